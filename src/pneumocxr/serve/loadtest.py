"""A bounded load test of a running `pneumocxr serve`, on this machine only.

A fixed number of requests per level (concurrent clients x with/without Grad-CAM), a time
limit for the whole test after which no request starts, and loopback addresses only.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.regular import open_regular
from pneumocxr.serve.server import is_loopback


def check_target(url: str) -> str:
    """The base URL, if it is http on a loopback address; otherwise a clear refusal."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise PneumoError(f"--url must look like http://127.0.0.1:8000, got {url!r}")
    if not is_loopback(parts.hostname):
        raise PneumoError(
            f"refusing to load-test {parts.hostname}: only this machine's loopback addresses "
            "(127.0.0.1, ::1, localhost) may be targeted"
        )
    return f"{parts.scheme}://{parts.netloc}"


def load_test(
    url: str,
    images: list[Path],
    requests: int = 64,
    concurrency=(1, 4, 16),
    gradcam=(False, True),
    time_limit: float = 300.0,
    scope_check: bool = True,
) -> dict:
    base = check_target(url)
    if requests < 1:
        raise PneumoError("--requests must be at least 1")
    if not images:
        raise PneumoError("no images to send")
    payloads = [(p.name, _read(p)) for p in images]
    params = {"scope_check": str(scope_check).lower()}
    return asyncio.run(_run(base, payloads, requests, concurrency, gradcam, time_limit, params))


def _read(path: Path) -> bytes:
    with open_regular(path) as handle:  # a named pipe given as an image would never end
        return handle.read()


async def _run(base, payloads, requests, concurrency, gradcam, time_limit, params) -> dict:
    import httpx

    deadline = time.monotonic() + time_limit
    levels = []
    limits = httpx.Limits(max_connections=max(concurrency), max_keepalive_connections=64)
    timeout = min(120.0, time_limit)
    # trust_env=False: a proxy from the environment must not carry the traffic elsewhere
    async with httpx.AsyncClient(
        base_url=base, timeout=timeout, limits=limits, trust_env=False
    ) as client:
        health = await _health(client)
        for cam in gradcam:
            await _send(client, payloads[0], cam, params)  # warm-up, not counted
            for clients in concurrency:
                level = await _level(client, payloads, requests, clients, cam, deadline, params)
                levels.append(level)
    return {"url": base, "model": health.get("model"), "requests": requests,
            "scope_check": params["scope_check"] == "true", "levels": levels}  # fmt: skip


async def _health(client) -> dict:
    import httpx

    try:
        response = await client.get("/api/health")
        response.raise_for_status()
        return response.json()
    except httpx.HTTPError as err:
        raise PneumoError(f"no pneumocxr server answers at {client.base_url}: {err}") from None


async def _send(client, payload, gradcam: bool, params: dict) -> float | None:
    """Seconds for one prediction, or None when it failed."""
    import httpx

    name, data = payload
    start = time.perf_counter()
    try:
        response = await client.post(
            "/api/predict",
            params={**params, "gradcam": str(gradcam).lower()},
            files={"file": (name, data)},
        )
    except httpx.HTTPError:
        return None
    seconds = time.perf_counter() - start
    try:
        ok = response.status_code == 200 and "label" in response.json()
    except ValueError:  # not JSON
        ok = False
    return seconds if ok else None


async def _level(client, payloads, requests, clients, gradcam, deadline, params) -> dict:
    latencies, failed, started = [], 0, 0

    async def worker():
        nonlocal failed, started
        while started < requests and time.monotonic() < deadline:
            payload = payloads[started % len(payloads)]
            started += 1
            seconds = await _send(client, payload, gradcam, params)
            if seconds is None:
                failed += 1
            else:
                latencies.append(seconds)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "gradcam": gradcam,
        "clients": clients,
        "completed": len(latencies),
        "failed": failed,
        "seconds": wall,
        "requests_per_s": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "cut_by_time_limit": started < requests,
    }


def table(result: dict) -> str:
    lines = [
        f"{result['model']} at {result['url']}, {result['requests']} requests per level",
        f"{'Grad-CAM':>8s} {'clients':>7s} {'done':>5s} {'failed':>6s} {'req/s':>7s} "
        f"{'p50 ms':>8s} {'p99 ms':>8s}",
    ]
    for level in result["levels"]:
        p50, p99 = level["p50_ms"], level["p99_ms"]
        lines.append(
            f"{'yes' if level['gradcam'] else 'no':>8s} {level['clients']:7d} "
            f"{level['completed']:5d} {level['failed']:6d} {level['requests_per_s']:7.1f} "
            f"{p50 if p50 is not None else float('nan'):8.0f} "
            f"{p99 if p99 is not None else float('nan'):8.0f}"
            + ("  (time limit reached)" if level["cut_by_time_limit"] else "")
        )
    return "\n".join(lines)
