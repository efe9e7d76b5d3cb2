"""The CLI as a user runs it, without paying the interpreter's start and torch's import for each
command: one warm process per test worker imports what every command needs and forks a child
per command. The child is a fresh process as far as the command can tell (its own argv, working
folder, stdin from /dev/null, stdout and stderr to files, exit code, `atexit` handlers), runs
`pneumocxr.cli.main` exactly as `python -m pneumocxr.cli` does, and leaves nothing behind in
the test process or the warm one. A command with an environment other than the one the warm
process started with runs as a plain subprocess (variables such as PYTHONIOENCODING act at
start-up), as does every command when PNEUMOCXR_TEST_SUBPROCESS=1."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

_WARM = r"""
import atexit, json, os, sys, traceback
requests, replies = os.fdopen(os.dup(0), "r"), os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing printed here may reach the replies
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as main() does, before torch loads
import numpy, pandas, PIL.Image, torch  # what every command imports: never run here
import pneumocxr.cli
from pneumocxr.cli import main



def run(request):
    code = 1
    try:
        for fd, name in ((1, "out"), (2, "err")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_TRUNC), fd)
        if request["cwd"]:
            os.chdir(request["cwd"])
        sys.argv = [pneumocxr.cli.__file__.replace("__init__", "__main__"), *request["args"]]
        sys.modules["__main__"].__package__ = "pneumocxr.cli"  # click names `python -m ...`
        try:
            main()
            code = 0
        except SystemExit as exit:
            if exit.code is None or isinstance(exit.code, int):
                code = exit.code or 0
            else:
                print(exit.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


for line in requests:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        run(request)
    replies.write(json.dumps({"pid": pid}) + "\n")
    replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
    replies.flush()
"""


class _Warm:
    def __init__(self):
        self.env = _compared(os.environ)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WARM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ),
        )
        self.pending = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def reply(self, timeout: float | None) -> dict:
        """The next line the warm process wrote, read from the bare descriptor (a buffered
        reader would keep a second line where select() cannot see it)."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("the warm CLI process ended")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: list[str], cwd, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="pneumocxr-cli-") as folder:
            out, err = Path(folder, "out"), Path(folder, "err")
            out.touch(), err.touch()
            request = {"args": args, "cwd": str(cwd or ""), "out": str(out), "err": str(err)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            pid = self.reply(60)["pid"]
            try:
                code = self.reply(timeout)["code"]
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self.reply(60)
                raise subprocess.TimeoutExpired(args, timeout) from None
            read = {"encoding": "utf-8", "errors": "backslashreplace"}
            return subprocess.CompletedProcess(
                args, code, out.read_text(**read), err.read_text(**read)
            )


_warm: _Warm | None = None


def run_command(args: list[str], env: dict, cwd, timeout: float) -> subprocess.CompletedProcess:
    """`python -m pneumocxr.cli ARGS` with `env` in `cwd`: forked from the warm process when
    `env` is the one it started with, else a plain subprocess."""
    global _warm
    if os.environ.get("PNEUMOCXR_TEST_SUBPROCESS") == "1":
        return _subprocess(args, env, cwd, timeout)
    if _warm is None or not _warm.alive():
        _warm = _Warm()
    if _compared(env) != _warm.env:
        return _subprocess(args, env, cwd, timeout)
    return _warm.run(args, cwd, timeout)


def _compared(env) -> dict:
    """An environment as it matters to a command (pytest names the current test in it)."""
    return {k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"}


def _subprocess(args, env, cwd, timeout) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pneumocxr.cli", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",  # file names need not be UTF-8
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
