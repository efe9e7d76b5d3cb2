"""Which phase of a command holds what memory: its RSS sampled every `--every` seconds beside its
log (docs/PERFORMANCE.md, "Memory while training").

Runs the command, reads /proc/PID/status (VmRSS, and VmHWM, the kernel's own peak) of the
process and its children, and timestamps every line it writes to stderr (pneumocxr's log).
Writes a JSON file: the peak, each log line with the RSS at that moment and the largest RSS
until the next line (the phase that line starts), the samples, wall time and load averages.

    python benchmarks/rss_timeline.py --json out.json -- pneumocxr run --data DIR --external DIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def _tree(pid: int) -> list[int]:
    """The process and its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return pids


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    start = time.time()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    samples, lines, hwm = [], [], {}

    def sample() -> None:
        while proc.poll() is None:
            pids = _tree(proc.pid)
            rss = sum(_status_kb(p, "VmRSS") for p in pids)
            for p in pids:
                hwm[p] = max(hwm.get(p, 0), _status_kb(p, "VmHWM"))
            samples.append((round(time.time() - start, 1), round(rss / 1024)))
            time.sleep(args.every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in proc.stderr:
        sys.stderr.write(line)
        lines.append((round(time.time() - start, 1), line.rstrip()[:160]))
    proc.wait()
    sampler.join(timeout=5)
    wall = time.time() - start
    marks = []
    for i, (t, text) in enumerate(lines):
        until = lines[i + 1][0] if i + 1 < len(lines) else wall
        during = [mb for s, mb in samples if t <= s <= until]
        at = [mb for s, mb in samples if s <= t]
        marks.append({"t": t, "line": text, "rss_mb": at[-1] if at else 0,
                      "max_until_next_mb": max(during, default=0)})  # fmt: skip
    result = {
        "command": " ".join(command),
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_mb_sampled": max((mb for _, mb in samples), default=0),
        "peak_rss_mb_kernel": round(max(hwm.values(), default=0) / 1024),
        "load_average_end": os.getloadavg(),
        "marks": marks,
        "samples": samples,
    }
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("wall_s", "peak_rss_mb_sampled",
                                               "peak_rss_mb_kernel", "returncode")}))  # fmt: skip
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
