"""`pneumocxr serve`: bind, load the model once, run uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
import tempfile
import warnings

from pneumocxr.errors import PneumoError

log = logging.getLogger("pneumocxr")


def serve(
    model=None,
    host: str = "127.0.0.1",
    port: int = 8000,
    threshold: str = "model",
    max_upload_mb: float = 20,
    max_megapixels: float = 40,
    max_batch: int = 16,
) -> None:
    sock = bind(host, port)  # first: a busy port fails before anything loads
    _quiet_dicom_warnings()
    if "torch" not in sys.modules:
        # OpenMP threads that spin while they wait stall the model for whole time slices when
        # other threads (decoding, PNGs, HTTP) or processes want the cores; sleeping ones do not
        # (docs/SERVING.md#speed).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import uvicorn

    from pneumocxr.serve.app import Limits, create_app
    from pneumocxr.serve.service import Service

    service = Service.load(model, threshold, int(max_megapixels * 1_000_000))
    app = create_app(service, Limits(int(max_upload_mb * 2**20), max_batch=max_batch))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    log.info("serving %s on http://%s:%d/ (Ctrl+C stops it)", service.name, shown, bound)
    if not is_loopback(host):
        log.warning("%s is reachable from other machines: the server has no login and no TLS", host)
    # Uploads over 1 MB are spooled to (already unlinked) temporary files: keep even those in
    # a private folder that goes when the server does.
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through Python instead of
    # the default handler lets the folder above be removed.
    previous = signal.signal(signal.SIGTERM, _exit)
    with tempfile.TemporaryDirectory(prefix="pneumocxr-serve-") as private:
        tempfile.tempdir = private
        try:
            config = uvicorn.Config(app, log_level="info", limit_concurrency=128)
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            tempfile.tempdir = None
            sock.close()
            signal.signal(signal.SIGTERM, previous)


def _quiet_dicom_warnings() -> None:
    """pydicom's warnings about invalid values quote the values (names and IDs among them, or
    whatever a broken length lets them run into); a server's log must not hold them."""
    import pydicom

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)
    warnings.filterwarnings("ignore", module="pydicom")


def _exit(_signum, _frame):
    raise SystemExit(0)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or one clear error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as err:
        raise PneumoError(f"cannot listen on {host}:{port}: {err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise PneumoError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; names are not resolved (they could point anywhere)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
