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
def fifo_watchdog(fifos, seconds: float = 10):
    """Unblock any reader of these named pipes after `seconds` (by opening them for writing
    and closing them: the reader sees the end of the file), so that a test of code that must
    never open them fails instead of hanging. Yields a list that holds True if it had to."""
    fired: list[bool] = []
    done = threading.Event()

    def watch():
        if done.wait(seconds):
            return
        fired.append(True)
        while not done.is_set():
            for fifo in fifos:
                with contextlib.suppress(OSError):  # ENXIO: nobody reads it now
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            done.wait(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join()
