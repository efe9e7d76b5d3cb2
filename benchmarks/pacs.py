"""The DICOM node's figures (docs/PACS.md), against a private Orthanc on this machine.

    .venv/bin/python benchmarks/pacs.py --json benchmarks/results/pacs.json
    .venv/bin/python benchmarks/pacs.py --quick        # 100 instances, 3 kill trials

1. latency: Orthanc C-STOREs one image to the node (REST /modalities/node/store), until the
   image's SR is stored back in Orthanc (polled with /tools/lookup), Grad-CAM included;
2. throughput: N instances sent by Orthanc in 4 concurrent store jobs (4 associations), SR
   only (--no-heatmap) and with Secondary Captures: seconds until the node has delivered every
   result; lost (an instance without its SR in Orthanc) and scored twice; the node's peak RSS;
3. kill trials: 4 associations of this script send a batch; the node is killed with SIGKILL
   at a uniformly random moment, restarted on its spool, and every instance it acknowledged
   must end with exactly one SR in Orthanc (none scored twice: the node's log).

The node runs as `pneumocxr dicom listen` (a process of its own, as deployed), on the shipped
model. Inputs are real chest X-rays from ../shared as DX files, each in its own study.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import shared_images  # noqa: E402
from orthanc import Orthanc, free_port  # noqa: E402
from pacs_cases import DX_STORAGE, chest_dx, sop_uid  # noqa: E402
from pneumocxr.dicom_results.uids import result_uid  # noqa: E402

WEIGHTS = json.loads((ROOT / "src/pneumocxr/weights/model.json").read_text())["weights"]["sha256"]
LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


class NodeProcess:
    """`pneumocxr dicom listen`, sending results to Orthanc; its log kept line by line."""

    def __init__(self, spool: Path, port: int, pacs: Orthanc, heatmap: bool):
        command = [
            sys.executable,
            "-m",
            "pneumocxr.cli",
            "dicom",
            "listen",
            "--spool",
            str(spool),
            "--port",
            str(port),
            "--allow",
            pacs.aet,
            "--allow",
            "BENCH",
            "--send-to",
            f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}",
            "--retry-delay",
            "0.2",
            *([] if heatmap else ["--no-heatmap"]),
        ]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(180) or self.process.poll() is not None:
            raise RuntimeError("node did not start: " + "\n".join(self.lines[-5:]))

    def _read(self, ready) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if LISTENING.search(line):
                ready.set()
        ready.set()

    def count(self, word: str) -> int:
        return sum(line.startswith(word) for line in self.lines)

    def uids(self, word: str) -> list[str]:
        return [line.split()[1].rstrip(":") for line in self.lines if line.startswith(word)]

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)


def make_inputs(folder: Path, count: int, offset: int = 0) -> list[Path]:
    """`count` DX files (new UIDs each call) from the shared X-rays, both classes in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    half = count // 2 + 1
    jpegs = [
        j
        for pair in zip(
            shared_images("NORMAL", half, offset), shared_images("PNEUMONIA", half, offset)
        )
        for j in pair
    ]
    return [chest_dx(folder / f"{i:04d}.dcm", jpeg) for i, jpeg in enumerate(jpegs[:count])]


def wait(condition, timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def missing_results(pacs: Orthanc, sources: list[str]) -> list[str]:
    return [uid for uid in sources if not pacs.lookup(result_uid("sr", uid, WEIGHTS))]


def latency(pacs: Orthanc, work: Path, count: int) -> dict:
    files = make_inputs(work / "latency", count + 2, offset=600)
    ids = [pacs.upload(f) for f in files]
    node = NodeProcess(work / "latency-spool", _node_port(pacs), pacs, heatmap=True)
    times, acked = [], []
    try:
        for path, instance in zip(files, ids):
            target = result_uid("sr", sop_uid(path), WEIGHTS)
            start = time.perf_counter()
            assert pacs.store("node", [instance]).status_code == 200
            acked.append(time.perf_counter() - start)
            assert wait(lambda t=target: pacs.lookup(t), 60, every=0.005)
            times.append(time.perf_counter() - start)
    finally:
        node.stop()
    times, acked = times[2:], acked[2:]  # the first two warm the node up
    return {
        "images": len(times),
        "p50_s": statistics.median(times),
        "p90_s": statistics.quantiles(times, n=10)[-1],
        "max_s": max(times),
        "c_store_p50_s": statistics.median(acked),
        "goal_p50_s": 2.0,
        "met": statistics.median(times) <= 2.0,
    }


def throughput(pacs: Orthanc, work: Path, count: int, heatmap: bool, offset: int) -> dict:
    name = "with-captures" if heatmap else "sr-only"
    files = make_inputs(work / name, count, offset)
    sources = [sop_uid(f) for f in files]
    ids = [pacs.upload(f) for f in files]
    node = NodeProcess(work / f"{name}-spool", _node_port(pacs), pacs, heatmap)
    try:
        start = time.perf_counter()
        jobs = [
            pacs_post(
                pacs, "/modalities/node/store", {"Resources": ids[i::4], "Synchronous": False}
            )["ID"]
            for i in range(4)
        ]
        done = wait(lambda: node.count("delivered results of ") >= count, 3600, every=0.1)
        seconds = time.perf_counter() - start
        states = [pacs.get(f"/jobs/{job}")["State"] for job in jobs]
        rss = node.peak_rss_mb()
    finally:
        node.stop()
    scored = node.uids("scored ")
    lost = missing_results(pacs, sources)
    goal = 5.0 if heatmap else 20.0
    return {
        "instances": count,
        "associations": 4,
        "seconds": seconds,
        "images_per_s": count / seconds,
        "all_delivered": done,
        "orthanc_jobs": states,
        "lost": len(lost),
        "scored_twice": len(scored) - len(set(scored)),
        "peak_rss_mb": rss,
        "goal_images_per_s": goal,
        "met": done and not lost and count / seconds >= goal,
    }


def pacs_post(pacs: Orthanc, path: str, body: dict) -> dict:
    import httpx

    response = httpx.post(pacs.url + path, json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def kill_trials(pacs: Orthanc, work: Path, trials: int, count: int, rng: random.Random) -> dict:
    runs = []
    for trial in range(trials):
        files = make_inputs(work / f"kill{trial}", count)  # new UIDs, the same pictures
        spool, port = work / f"kill{trial}-spool", free_port()
        first = NodeProcess(spool, port, pacs, heatmap=False)
        acked: list[str] = []
        senders = [
            threading.Thread(target=_send, args=(port, files[i::4], acked)) for i in range(4)
        ]
        start = time.perf_counter()
        for sender in senders:
            sender.start()
        moment = rng.uniform(0.2, count / 20)  # within a batch at the goal's rate
        time.sleep(max(0.0, moment - (time.perf_counter() - start)))
        first.kill()
        for sender in senders:
            sender.join(60)
        second = NodeProcess(spool, port, pacs, heatmap=False)
        settled = wait(lambda s=spool: not _left(s), 600)
        second.stop()
        lost = missing_results(pacs, acked)
        scored = first.uids("scored ") + second.uids("scored ")
        runs.append(
            {
                "killed_after_s": round(moment, 2),
                "acknowledged": len(acked),
                "scored_before_kill": len(first.uids("scored ")),
                "settled": settled,
                "lost": len(lost),
                "scored_twice": len(scored) - len(set(scored)),
            }
        )
        print(f"kill trial {trial + 1}: {runs[-1]}", flush=True)
    return {
        "trials": runs,
        "instances_per_trial": count,
        "node": "SR only (--no-heatmap)",
        "every_acknowledged_has_one_result": all(
            r["lost"] == 0 and r["scored_twice"] == 0 and r["settled"] for r in runs
        ),
    }


def _send(port: int, files: list[Path], acked: list[str]) -> None:
    from pynetdicom import AE

    scu = AE(ae_title="BENCH")
    scu.add_requested_context(DX_STORAGE, "1.2.840.10008.1.2.1")
    assoc = scu.associate("127.0.0.1", port, ae_title="PNEUMOCXR")
    for path in files:
        if not assoc.is_established:
            return
        status = assoc.send_c_store(path)
        if getattr(status, "Status", None) == 0x0000:
            acked.append(sop_uid(path))
    if assoc.is_established:
        assoc.release()


def _left(spool: Path) -> list:
    return [*(spool / "incoming").iterdir(), *(spool / "outbox").iterdir()]


def _node_port(pacs: Orthanc) -> int:
    port = free_port()
    pacs.add_modality("node", "PNEUMOCXR", port)
    return port


def machine() -> dict:
    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": os.getloadavg(),
    }


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--latency-images", type=int, default=20)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--kill-instances", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="100 instances, 3 kill trials")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.instances, args.trials, args.kill_instances, args.latency_images = 100, 3, 100, 10
    import tempfile

    results = {"machine": machine(), "command": " ".join(["benchmarks/pacs.py", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        work = Path(tmp)
        with Orthanc(work / "orthanc", ConcurrentJobs=4) as pacs:
            results["latency"] = latency(pacs, work, args.latency_images)
            print("latency", results["latency"], flush=True)
            results["sr_only"] = throughput(pacs, work, args.instances, False, offset=0)
            print("sr only", results["sr_only"], flush=True)
            results["with_captures"] = throughput(pacs, work, args.instances, True, offset=0)
            print("with captures", results["with_captures"], flush=True)
            results["kill"] = kill_trials(
                pacs, work, args.trials, args.kill_instances, random.Random(args.seed)
            )
    results["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(results, indent=2) + "\n"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
