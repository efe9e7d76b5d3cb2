"""The test harness's forked CLI (tests/cli_fork.py) answers exactly as a fresh interpreter
does: the same stdout, stderr and exit code, for an answer, a refusal and a usage error."""

from __future__ import annotations

import os

import pytest

from cli_fork import _subprocess, run_command
from conftest import shared_images


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--json", str(shared_images("PNEUMONIA", 1)[0])],
        ["predict", "/nonexistent/scan.jpeg"],
        ["predict", "--batch-size", "0", str(shared_images("NORMAL", 1)[0])],
        ["no-such-command"],
    ],
    ids=["answer", "refusal", "bad option", "usage"],
)
def test_forked_commands_answer_as_a_fresh_interpreter(args, tmp_path):
    env = dict(os.environ)
    forked = run_command(args, env, tmp_path, 120)
    fresh = _subprocess(args, env, tmp_path, 120)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )
    assert forked.stdout or forked.stderr
