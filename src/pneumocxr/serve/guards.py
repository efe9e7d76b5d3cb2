"""Requests the server refuses before any route runs, and clear words for the multipart
parser's refusals.

A page on any web site can make a browser post to 127.0.0.1 once its own domain name is made
to point there (DNS rebinding); its requests still carry that name in the Host header, so only
the names the server is meant to be reached by are answered.
"""

from __future__ import annotations

from starlette.middleware.trustedhost import TrustedHostMiddleware

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_PASSED = "pneumocxr.host_allowed"


def allowed_hosts(host: str, extra=()) -> list[str]:
    """The loopback names, the address the server listens on, and any given with
    --allowed-host (a name in Host headers: IPv6 addresses in brackets)."""
    names = [*LOOPBACK_NAMES, host if ":" not in host or host.startswith("[") else f"[{host}]"]
    return list(dict.fromkeys(n.lower() for n in [*names, *(extra or ())]))


class HostCheck:
    """Starlette's TrustedHostMiddleware decides; a refusal is answered in the API's own
    `{"detail"}` form (`problem`) instead of its plain text."""

    def __init__(self, app, hosts, problem):
        self.app, self.problem, self.hosts = app, problem, list(hosts)
        self.check = TrustedHostMiddleware(_mark_passed, allowed_hosts=hosts, www_redirect=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        await self.check(scope, receive, _discard)
        if not scope.pop(_PASSED, False):
            names = ", ".join(h for h in self.hosts if h != "*")
            detail = f"unknown Host header: this server answers to {names}"
            return await self.problem(400, detail)(scope, receive, send)
        await self.app(scope, receive, send)


async def _mark_passed(scope, _receive, _send):
    scope[_PASSED] = True


async def _discard(_message):
    pass


def multipart_detail(err: Exception, detail: str) -> str:
    """The multipart parser's refusal in words that say what to change."""
    if detail.startswith("Too many files"):
        return "send one file per request (this request holds several)"
    if detail != "Invalid multipart data.":
        return detail
    cause = getattr(err.__context__, "__cause__", None)
    if "header size" in str(cause):
        return "a part's headers are over 4 KB: is the file name that long? Send a shorter one"
    return "malformed multipart body: send the image as multipart/form-data field 'file'"
