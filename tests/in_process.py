"""The real CLI (`pneumocxr.cli.main`) called inside the test process: no interpreter start or
torch import per command. What main() changes globally (the logger) is put back after."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading


def run_cli(*args) -> subprocess.CompletedProcess:
    """One command as a user types it: its exit code, stdout and stderr."""
    from pneumocxr.cli import main

    log = logging.getLogger("pneumocxr")
    saved = (log.handlers[:], log.level, log.propagate, sys.argv)
    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    sys.argv = ["pneumocxr", *argv]
    log.handlers.clear()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    finally:
        log.handlers[:], log.level, log.propagate, sys.argv = saved
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def fifo_watchdog(fifos):
    """Watch named pipes that the code under test must never open: whenever a reader has one
    open (and so waits for a writer forever), open it for writing and close it, so that the
    reader sees the end of the file and the test fails instead of hanging. Yields a list that
    holds True once that happened."""
    fired: list[bool] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            for fifo in fifos:
                try:  # succeeds only while someone reads the pipe
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    continue
                fired.append(True)
            done.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join()
