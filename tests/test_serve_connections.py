"""Idle and slow connections time out and never lock real clients out of `pneumocxr serve`: the
concurrency limit counts requests, not sockets (issue 22)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from conftest import shared_images
from live_server import free_port, post
from pneumocxr.serve.app import _problem
from pneumocxr.serve.connections import RequestLimit, TimedH11Protocol

IDLE_SOCKETS = 300
ANSWER_S = 2.0  # the bound for each normal request while they are open


def open_sockets(base: str, count: int) -> list[socket.socket]:
    host, port = base.removeprefix("http://").split(":")
    return [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]


def test_idle_sockets_do_not_lock_out_real_requests(server):
    image = shared_images("PNEUMONIA", 1, 7)[0].read_bytes()
    idle = open_sockets(server.base, IDLE_SOCKETS)
    try:
        with httpx.Client(base_url=server.base, timeout=30, trust_env=False) as client:
            for ask in (lambda: client.get("/api/model"), lambda: post(client, image)):
                start = time.monotonic()
                response = ask()
                took = time.monotonic() - start
                assert response.status_code == 200, response.text
                assert took < ANSWER_S, took
    finally:
        for sock in idle:
            sock.close()


# -- the deadlines, on a real uvicorn with short ones ----------------------------------------
class Quick(TimedH11Protocol):
    header_timeout_s = 0.5
    body_grace_s = 0.5
    body_min_rate = 1000


async def echo_length(scope, receive, send):
    """Reads the whole body and answers its length."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@contextlib.contextmanager
def quick_server(limit: int = 4):
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    app = RequestLimit(echo_length, limit, _problem)
    config = uvicorn.Config(app, http=Quick, limit_concurrency=None, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Does the server close `sock` within `seconds`, while `trickle` is sent a byte at a time
    every 0.1 s?"""
    sock.settimeout(0.1)
    deadline = time.monotonic() + seconds
    for byte in [trickle[i : i + 1] for i in range(len(trickle))] + [b""] * 1000:
        if time.monotonic() > deadline:
            return False
        try:
            if byte:
                sock.sendall(byte)
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset: closed too
            return True
    return False


HEADERS = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"


@pytest.mark.parametrize(
    "sent, trickle",
    [
        (b"", b""),  # connects and sends nothing
        (b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100),  # headers, a byte at a time
        (HEADERS, b"b" * 100),  # the body, a byte at a time
    ],
    ids=["idle", "slow-headers", "slow-body"],
)
def test_idle_and_slow_connections_are_closed(sent, trickle):
    with quick_server() as base:
        (sock,) = open_sockets(base, 1)
        sock.sendall(sent)
        assert closed_within(sock, 4.0, trickle)
        sock.close()


def test_a_kept_alive_client_and_the_request_limit():
    with quick_server(limit=2) as base, httpx.Client(base_url=base, trust_env=False) as client:
        assert client.post("/", content=b"x" * 5000).text == "5000"
        time.sleep(0.3)  # within the header deadline of the next request: still open
        assert client.post("/", content=b"y" * 10).text == "10"
        slow = open_sockets(base, 2)
        for sock in slow:
            sock.sendall(HEADERS)  # two requests whose bodies never come
        time.sleep(0.2)
        busy = client.get("/")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["detail"]
        time.sleep(1.5)  # their deadlines pass: the slots are free again
        assert client.get("/").status_code == 200
        for sock in slow:
            sock.close()
