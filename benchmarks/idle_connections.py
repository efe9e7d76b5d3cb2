"""Real requests to `pneumocxr serve` while idle and slow connections are held open (issue 22).

    .venv/bin/python benchmarks/idle_connections.py [--idle 300] [--json FILE]

Starts a real server on a free loopback port, opens `--idle` sockets that send nothing and 20
that send a request's headers one byte a second, then makes 10 GET /api/model and 10 POST
/api/predict of a real X-ray, each on a new connection, and reports their statuses and
latencies; finally whether the server closed the idle sockets (after its header deadline).
Run it with PYTHONPATH pointing at another source tree to measure that code instead.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import shared_images  # noqa: E402
from live_server import post, running_server  # noqa: E402

SLOW = 20
REQUESTS = 10


def trickle(sock: socket.socket, stop: threading.Event) -> None:
    """Headers that never end, one byte a second."""
    for byte in b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
        if stop.wait(1.0):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def closed(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def measure(base: str, idle_count: int) -> dict:
    host, port = base.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(idle_count)]
    slow = [socket.create_connection((host, int(port))) for _ in range(SLOW)]
    stop = threading.Event()
    for sock in slow:
        threading.Thread(target=trickle, args=(sock, stop), daemon=True).start()
    image = shared_images("PNEUMONIA", 1, 7)[0].read_bytes()
    timings = {"GET /api/model": [], "POST /api/predict": []}
    statuses = {name: [] for name in timings}
    for _ in range(REQUESTS):
        for name in timings:
            with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
                start = time.monotonic()
                response = client.get("/api/model") if name.startswith("GET") else post(
                    client, image
                )  # fmt: skip
                timings[name].append(time.monotonic() - start)
                statuses[name].append(response.status_code)
    time.sleep(12)  # past the header deadline (10 s)
    result = {
        "idle sockets": idle_count,
        "slow senders": SLOW,
        "statuses": {k: {str(s): v.count(s) for s in set(v)} for k, v in statuses.items()},
        "worst latency s": {k: round(max(v), 3) for k, v in timings.items()},
        "idle closed by the server after 12 s": sum(closed(s) for s in idle),
        "slow senders closed after 12 s": sum(closed(s) for s in slow),
    }
    stop.set()
    for sock in idle + slow:
        sock.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, running_server(Path(home)) as server:
        result = measure(server.base, args.idle)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
