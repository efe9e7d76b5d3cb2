"""What `pneumocxr train` shows in a terminal (a real pseudo-terminal, rendered by the pyte
terminal emulator): one whole summary line per epoch, never written over, and progress bars
that fit the terminal's width; in a pipe, the summary lines only."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pyte

from conftest import cli, make_subset

COLUMNS = 100
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRAIN = ["train", "--epochs", "2", "--image-size", "32", "--batch-size", "8"]


def _in_terminal(args: list[str]) -> str:
    """The bytes a command wrote to a COLUMNS-wide terminal, as text."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    env = {**os.environ, "COLUMNS": str(COLUMNS), "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "pneumocxr.cli", *args], stdin=follower,
                               stdout=follower, stderr=follower, env=env)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the command ended and closed its side
            break
        if not data:
            break
        chunks.append(data)
    assert process.wait(timeout=120) == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_a_terminal_shows_whole_epoch_lines_and_bars_that_fit(tmp_path):
    data = make_subset(tmp_path / "data", 16, 16)
    raw = _in_terminal([*TRAIN, "--data", str(data), "--out", str(tmp_path / "runs")])
    updates = [ANSI.sub("", part) for part in re.split(r"[\r\n]", raw)]
    bars = [u for u in updates if re.search(r"it/s|s/it|\?it", u)]
    assert bars, raw[-2000:]  # bars were drawn
    assert max(len(bar) for bar in bars) <= COLUMNS, max(bars, key=len)  # none overflows
    screen = pyte.Screen(COLUMNS, 400)
    stream = pyte.Stream(screen)
    stream.feed(raw.replace("\n", "\r\n"))
    shown = [line.rstrip() for line in screen.display]
    epochs = [line for line in shown if re.search(r"epoch \d/2 \[train\]", line)]
    assert len(epochs) == 2, shown
    assert all(line.startswith("epoch ") and line.endswith(tuple("0123456789")) for line in epochs)


def test_a_pipe_gets_the_summary_lines_only(tmp_path):
    data = make_subset(tmp_path / "data", 16, 16)
    result = cli(*TRAIN, "--data", data, "--out", tmp_path / "runs")
    assert "\r" not in result.stderr and "it/s" not in result.stderr
    assert len(re.findall(r"^epoch \d/2 \[train\]", result.stderr, re.MULTILINE)) == 2
