"""Connections that send nothing, or send slowly, time out; the concurrency limit counts
requests, not sockets.

uvicorn's `limit_concurrency` counts open connections, and it has no timeout for a request's
headers: 130 sockets that never sent a byte made every real request get 503 for as long as
they stayed open (the hostile round of issue 22). Here uvicorn's HTTP/1.1 protocol (h11) gets
deadlines, and `RequestLimit` counts the requests the app is working on.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

CHECK_EVERY_S = 0.5


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with two deadlines, whatever the client sends meanwhile:

    - a request's headers must be complete within `header_timeout_s` of the connection
      opening, or of the previous response (uvicorn's keep-alive timer is reset by every
      byte, so a byte every few seconds kept a socket forever);
    - its body must keep arriving at `body_min_rate` bytes/s on average after
      `body_grace_s` seconds (a 20 MB upload at that rate takes 5 minutes).

    A connection past its deadline is closed; the app sees the client gone. While the server
    itself has stopped reading (flow control), the body's clock stops."""

    header_timeout_s = 10.0
    body_grace_s = 10.0
    body_min_rate = 64 * 1024

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        self._body_since, self._body_bytes = None, 0
        self._timer = self.loop.call_later(CHECK_EVERY_S, self._check)

    def connection_lost(self, exc) -> None:
        self._timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.SEND_BODY:
            self._body_bytes += len(data)
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY and self._body_since is None:
            self._body_since, self._body_bytes = self.loop.time(), 0

    def on_response_complete(self) -> None:
        self._waiting_since = self.loop.time()  # the next request's headers are awaited now
        self._body_since, self._body_bytes = None, 0
        super().on_response_complete()

    def _check(self) -> None:
        if self.transport.is_closing():
            return
        if self.flow.read_paused and self._body_since is not None:
            self._body_since += CHECK_EVERY_S  # the server stopped reading, not the client
        if self._overdue():
            self.transport.close()
            return
        self._timer = self.loop.call_later(CHECK_EVERY_S, self._check)

    def _overdue(self) -> bool:
        now, state = self.loop.time(), self.conn.their_state
        if state is h11.IDLE:
            return now - self._waiting_since > self.header_timeout_s
        if state is h11.SEND_BODY and self._body_since is not None:
            allowed = self.body_grace_s + self._body_bytes / self.body_min_rate
            return now - self._body_since > allowed
        return False


class RequestLimit:
    """At most `limit` requests in the app at once; the next get 503 at once (an open socket
    is no request: it costs nothing here until its headers are in)."""

    def __init__(self, app, limit: int, problem):
        self.app, self.limit, self.problem, self.active = app, limit, problem, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            response = self.problem(503, "the server is busy: try again in a moment")
            response.headers["retry-after"] = "1"
            return await response(scope, receive, send)
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
