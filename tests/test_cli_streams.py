"""The command line's own streams and messages (issue 22): an output encoding that lacks a file
name's letters, a closed standard output, a HOME matplotlib cannot write to, and paths of
thousands of characters in an error or warning line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import cli_batch, make_subset, shared_images
from pneumocxr.fileio.formats import read_csv

NAME = "рентген.jpeg"  # Cyrillic: not in latin-1


def start(args, cwd: Path, env: dict | None = None, close_stdout: bool = False):
    """The real `pneumocxr` in its own process (its streams are what is tested)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pneumocxr.cli", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,  # as `>&-` does
    )


def finish(process) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out.decode("latin-1"), err.decode("utf-8", "replace")


def test_answers_survive_the_terminal(tmp_path):
    (tmp_path / NAME).symlink_to(shared_images("NORMAL", 1, 11)[0])
    data = make_subset(tmp_path / "data", 6, 6)
    home = {"HOME": "/proc/self", "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": "", "MPLCONFIGDIR": ""}
    runs = {
        "latin-1": start(["predict", NAME, "--csv", "latin.csv"], tmp_path,
                         {"PYTHONIOENCODING": "latin-1"}),
        "closed": start(["predict", NAME, "--csv", "closed.csv"], tmp_path, close_stdout=True),
        "home": start(["split", "--data", data, "--out", "split"], tmp_path, home),
    }  # fmt: skip
    code, out, err = finish(runs["latin-1"])
    assert code == 0 and "error" not in err
    assert out.startswith("\\u0440\\u0435\\u043d\\u0442\\u0433\\u0435\\u043d.jpeg\tNORMAL\t")
    assert list(read_csv(tmp_path / "latin.csv")["path"]) == [NAME]  # the exact name
    code, out, err = finish(runs["closed"])
    assert code == 1
    assert err.splitlines()[-1] == (
        "error: standard output is closed: the answers could not be printed"
    )
    assert list(read_csv(tmp_path / "closed.csv")["path"]) == [NAME]  # written first
    code, out, err = finish(runs["home"])
    assert code == 0 and (tmp_path / "split" / "distribution.png").is_file()
    assert "atplotlib" not in err and "mkdir" not in err, err


def test_long_paths_are_cut_in_the_middle_of_messages(tmp_path):
    deep = tmp_path
    for letter in "abcdefghij":  # 10 folders of 200 characters: a path over 2,000 long
        deep = deep / (letter * 200)
    deep.mkdir(parents=True)
    (deep / "notes.jpeg").write_text("not an image")
    (tmp_path / "tab\there.jpeg").write_text("not an image either")  # escaped once, as before
    good = shared_images("NORMAL", 1, 12)[0]
    missing = tmp_path / ("m" * 5000) / "x.jpeg"
    tab = tmp_path / "tab\there.jpeg"
    skipped, refused = cli_batch(
        [["predict", good, deep / "notes.jpeg", tab], ["predict", missing]]
    )
    warning, tabbed = [line for line in skipped.stderr.splitlines() if line.startswith("warning:")]
    assert tabbed.endswith("/tab\\there.jpeg: not a readable image (unknown format or damaged)")
    assert skipped.returncode == 0 and len(warning) < 300, warning
    assert "..." in warning and warning.endswith("jjj/notes.jpeg: not a readable image "
                                                 "(unknown format or damaged)")  # fmt: skip
    (error,) = refused.stderr.splitlines()
    assert refused.returncode == 1 and len(error) < 300 and error.endswith("mmm/x.jpeg"), error


_MAIN_THREE_TIMES = """
import contextlib, io, sys
from pneumocxr.cli import main
image = sys.argv[1]
for _ in range(3):
    err = io.StringIO()
    sys.argv = ["pneumocxr", "predict", image]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit:
            pass
    text = err.getvalue()
    err.close()  # as a notebook cell's or a test's captured stream is, once it is done
print(text, end="")
"""


def test_main_run_again_in_one_process_logs_once_to_the_stderr_of_the_moment():
    """A notebook or a test may call `pneumocxr.cli.main` several times, each time with its own
    stderr: every line goes, once, to the stderr of that call, never to an earlier closed one."""
    image = shared_images("NORMAL", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", _MAIN_THREE_TIMES, str(image)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "Logging error" not in done.stdout + done.stderr
    assert done.stdout.startswith("threshold "), done.stdout
    assert done.stdout.count("threshold ") == 1, done.stdout
