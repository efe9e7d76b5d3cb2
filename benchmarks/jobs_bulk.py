"""Bulk scoring (docs/SCALING.md): images/s of `pneumocxr predict --labels CSV --csv OUT` with
one process and with two (DDP on the CPU, gloo), and the memory of one process scoring
100,000 rows: the shared X-rays listed again and again under other names (symbolic links)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import DATA, PNEUMOCXR, machine, save

SPEED_ROWS = 2000
MEMORY_ROWS = 100_000


def listing(folder: Path, rows: int) -> Path:
    """A CSV of `rows` links to the shared training X-rays, each under its own name."""
    images = sorted((DATA / "train").glob("*/*.jpeg"))
    lines = ["path"]
    for i in range(rows):
        link = folder / f"x{i:06d}.jpeg"
        link.symlink_to(images[i % len(images)])
        lines.append(link.name)
    (folder / "list.csv").write_text("\n".join(lines) + "\n")
    return folder / "list.csv"


def _sampled(command: list[str], out: Path) -> dict:
    """Run `command`, sampling its RSS (and its children's) each second against rows written."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, start = [], time.perf_counter()

    def sample():
        while process.poll() is None:
            rows = _lines(out) - 1 if out.exists() else 0
            samples.append((round(time.perf_counter() - start, 1), rows, _rss_mb(process.pid)))
            time.sleep(1.0)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, err = process.communicate()
    watcher.join()
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{err.decode()[-3000:]}")
    return {"wall_s": time.perf_counter() - start, "samples": samples}


def _lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _rss_mb(pid: int) -> float:
    """RSS of a process and its children (DDP's second process), MB."""
    total = 0
    for task in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{task}/status").read_text()
        except OSError:
            continue
        total += sum(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found] + [g for c in found for g in _children(int(c))]


def bulk(_args) -> None:
    """images/s of one process and of two (DDP, gloo) on the same 2,000 rows, and whether
    their files are the same bytes."""
    result = {"command": "pneumocxr predict --labels list.csv --csv out.csv [--accelerator cpu "
              "--devices 2 --strategy ddp]", "model": "default"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        short = listing(folder, SPEED_ROWS)
        for name, extra in (("one_process", []),
                            ("two_processes", ["--accelerator", "cpu", "--devices", "2",
                                               "--strategy", "ddp"])):  # fmt: skip
            out = folder / f"{name}.csv"
            run = _sampled([*PNEUMOCXR, "predict", "--labels", str(short), "--csv", str(out),
                            *extra], out)  # fmt: skip
            result[name] = {"rows": SPEED_ROWS, "wall_s": run["wall_s"],
                            "img_s": SPEED_ROWS / run["wall_s"],
                            "peak_rss_mb": max(s[2] for s in run["samples"])}  # fmt: skip
        result["same_rows"] = (folder / "one_process.csv").read_bytes() == (
            folder / "two_processes.csv").read_bytes()  # fmt: skip
    result["cpus"] = os.cpu_count()
    save("bulk", {**result, "machine_at_end": machine()})


def bulk_memory(_args) -> None:
    """The RSS of one process scoring 100,000 rows, sampled each second against rows written."""
    result = {"command": "pneumocxr predict --labels list.csv --csv out.csv", "model": "default"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = listing(folder, MEMORY_ROWS)
        out = folder / "memory.csv"
        run = _sampled([*PNEUMOCXR, "predict", "--labels", str(rows), "--csv", str(out)], out)
        result["memory"] = {"rows": MEMORY_ROWS, "wall_s": run["wall_s"],
                            "rows_written": _lines(out) - 1,
                            "samples": run["samples"][:: max(1, len(run["samples"]) // 40)],
                            "peak_rss_mb": max(s[2] for s in run["samples"])}  # fmt: skip
    save("bulk_memory", {**result, "machine_at_end": machine()})
