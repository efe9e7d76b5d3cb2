"""`make test` brings what its tests need (tools/system-deps.sh), with apt-get stubbed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "system-deps.sh"


def stub(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)


def run_script(tmp_path: Path, uid: int, with_sudo: bool) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}')
    stub(bin_dir, "id", f"echo {uid}")
    if with_sudo:
        stub(bin_dir, "sudo", f'echo "sudo" >> {log}; "$@"')
    for tool in ("bash", "env"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    (bin_dir / "python3").symlink_to(sys.executable)  # a Python that has venv
    env = {"PATH": str(bin_dir), "CHROMIUM": str(tmp_path / "no-chromium")}
    return subprocess.run(
        [str(bin_dir / "bash"), SCRIPT, "python3"], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip


def test_missing_chromium_is_installed_with_apt_get(tmp_path):
    result = run_script(tmp_path, uid=0, with_sudo=False)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    assert calls[1].startswith("apt-get install -y") and calls[1].endswith(
        " --no-install-recommends chromium"
    )


def test_a_user_gets_sudo(tmp_path):
    result = run_script(tmp_path, uid=1000, with_sudo=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text().splitlines()[0] == "sudo"


def test_without_sudo_it_says_what_to_install_in_one_line(tmp_path):
    result = run_script(tmp_path, uid=1000, with_sudo=False)
    assert result.returncode == 1 and not (tmp_path / "calls").exists()
    assert result.stderr == (
        "error: make test needs chromium: run 'apt-get install chromium' as root\n"
    )


def test_make_test_runs_it_and_ci_only_calls_make_test():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    plan = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert plan.stdout.splitlines()[0] == "tools/system-deps.sh python3"
    ci = [x for x in (ROOT / ".ci" / "run").read_text().splitlines() if x and x[0] != "#"]
    assert ci[-1] == "make test" and not any("apt-get" in x for x in ci)
