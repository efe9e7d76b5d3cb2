"""Shared fixtures: the real X-rays in ../shared, small Kaggle-layout subsets, trained runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are saved, never shown
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on two cores: two threads each made OpenMP's threads wait on each
    # other (the notebook took 125 s instead of 40); one each keeps both cores busy. Inherited
    # by the CLI subprocesses, the notebook's kernel and the server.
    os.environ["OMP_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "chest_xray").resolve()
TRAIN = DATA / "train"
EXTERNAL = (ROOT / ".." / "shared" / "data" / "external").resolve()


def pytest_sessionstart(session):
    if not (TRAIN / "NORMAL").is_dir() or not (TRAIN / "PNEUMONIA").is_dir():
        pytest.exit(
            f"the shared chest X-rays were expected at {DATA} "
            "(../shared/data/chest_xray relative to the project root)",
            returncode=2,
        )


@pytest.fixture(scope="session")
def data_root() -> Path:
    return DATA


# Debian's chromium as root in a container: no sandbox, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


def shared_images(label: str, count: int, start: int = 0) -> list[Path]:
    return sorted((TRAIN / label).glob("*.jpeg"))[start : start + count]


def make_subset(folder: Path, normal: int, pneumonia: int, start: int = 0) -> Path:
    """A Kaggle-layout folder of symlinks to shared images (the images are never copied)."""
    for label, count in (("NORMAL", normal), ("PNEUMONIA", pneumonia)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for image in shared_images(label, count, start):
            (folder / label / image.name).symlink_to(image)
    return folder


def _source_key() -> str:
    """A hash of the package's source: what the shared artefacts were built by."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "pneumocxr").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


SOURCE_KEY = _source_key()


def built_once(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)`'s result, built once per test session whatever the number of pytest-xdist
    workers: the first worker to ask builds it behind a file lock in the session's shared
    temporary folder (keyed by the source that builds it); the others wait and reuse it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session
    folder = root / f"shared-{name}-{SOURCE_KEY}"
    done = folder.with_name(folder.name + ".done")
    with FileLock(str(folder) + ".lock"):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            done.write_text(str(build(folder)))
    return Path(done.read_text())


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """120 NORMAL + 120 PNEUMONIA images in the Kaggle layout."""
    return built_once(tmp_path_factory, "small",
                      lambda folder: make_subset(folder / "chest_xray", 120, 120))  # fmt: skip


def cli(
    *args, check: bool = True, env: dict | None = None, cwd=None, timeout: float = 1200
) -> subprocess.CompletedProcess:
    """Run the installed `pneumocxr` command as a user would (killed after `timeout` s): a
    process of its own, forked from a warm one when it can be (tests/cli_fork.py)."""
    from cli_fork import run_command

    args = [str(a) for a in args]
    command = [sys.executable, "-m", "pneumocxr.cli", *args]
    result = run_command(args, {**os.environ, **(env or {})}, cwd, timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


RULE_PREFIX = "threshold "  # predict's one informational line: its threshold, band, scope check


def problems(stderr: str) -> list[str]:
    """stderr's lines without `predict`'s line stating the threshold it uses."""
    return [line for line in stderr.splitlines() if not line.startswith(RULE_PREFIX)]


def train_quick(data: Path, out: Path, model: str = "smallnet", *extra) -> Path:
    """A small real training run through the CLI; returns its run folder."""
    result = cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--model",
        model,
        "--epochs",
        2,
        "--image-size",
        64,
        "--batch-size",
        16,
        *extra,
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("run folder:")][-1]
    return Path(line.split(":", 1)[1].strip())


@pytest.fixture(scope="session")
def smallnet_run(small_data, tmp_path_factory) -> Path:
    """A SmallNet run (tests must not change it: other test files share it)."""
    return built_once(tmp_path_factory, "smallnet-run",
                      lambda folder: train_quick(small_data, folder))  # fmt: skip


@pytest.fixture(scope="session")
def effnet_run(small_data, tmp_path_factory) -> Path:
    """An EfficientNet-Lite0 run (tests must not change it: other test files share it)."""
    extra = ("--unfreeze", "2", "--head-epochs", "1", "--class-weight", "balanced")

    def build(folder: Path) -> Path:
        return train_quick(small_data, folder, "efficientnet-lite0", *extra)

    return built_once(tmp_path_factory, "effnet-run", build)


@pytest.fixture(scope="session")
def quick_run(data_root, tmp_path_factory) -> Path:
    """`pneumocxr run --quick` on the whole shared folder with the external set: the main job,
    once per session."""
    out = tmp_path_factory.mktemp("main")
    cli("run", "--data", data_root, "--out", out, "--quick", "--external", EXTERNAL)
    (run_dir,) = out.glob("run-*")
    return run_dir


_BATCH_DRIVER = """
import contextlib, io, json, logging, sys
from pneumocxr.cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    logging.getLogger("pneumocxr").handlers.clear()
    sys.argv = ["pneumocxr", *argv]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def cli_batch(
    commands: list[list], timeout: float = 300, prefix: list[str] = ()
) -> list[subprocess.CompletedProcess]:
    """Several CLI commands through `pneumocxr.cli.main`, one after another in one process
    (torch is imported once); each gets its own exit code, stdout and stderr. `prefix` runs
    the process through another command (e.g. setpriv)."""
    argv = [[str(a) for a in command] for command in commands]
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _BATCH_DRIVER],
        input=json.dumps(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return [
        subprocess.CompletedProcess(a, code, out, err)
        for a, (code, out, err) in zip(argv, json.loads(done.stdout.splitlines()[-1]))
    ]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real `pneumocxr serve` on a free loopback port (tests/live_server.py), started once
    for all the web API tests."""
    from live_server import running_server

    with running_server(tmp_path_factory.mktemp("serve")) as started:
        yield started


@pytest.fixture(scope="session")
def client(server):
    import httpx

    with httpx.Client(base_url=server.base, timeout=60, trust_env=False) as http:
        yield http
