"""`pneumocxr serve`: bind, load the model once, run uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import warnings
from pathlib import Path

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
    allowed_host=None,
) -> None:
    sock = bind(host, port)  # first: a busy port fails before anything loads
    _quiet_dicom_warnings()
    # python-multipart logs the byte where a malformed body went wrong: the client is told
    # in its 400; the server's log keeps to one line per request.
    logging.getLogger("python_multipart").setLevel(logging.CRITICAL + 1)
    if "torch" not in sys.modules:
        # OpenMP threads that spin while they wait stall the model for whole time slices when
        # other threads (decoding, PNGs, HTTP) or processes want the cores; sleeping ones do not
        # (docs/SERVING.md#speed).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import uvicorn

    from pneumocxr.serve.app import Limits, create_app
    from pneumocxr.serve.connections import TimedH11Protocol
    from pneumocxr.serve.guards import allowed_hosts
    from pneumocxr.serve.service import Service

    service = Service.load(model, threshold, int(max_megapixels * 1_000_000))
    hosts = allowed_hosts(host, allowed_host)
    limits = Limits(int(max_upload_mb * 2**20), max_batch=max_batch)
    app = create_app(service, limits, hosts)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    log.info("serving %s on http://%s:%d/ (Ctrl+C stops it)", service.name, shown, bound)
    if not is_loopback(host):
        log.warning("%s is reachable from other machines: the server has no login and no TLS", host)
    log.info("answering requests for host names: %s", ", ".join(hosts))
    # Uploads over 1 MB are spooled to (already unlinked) temporary files: keep even those in
    # a private folder that goes when the server does.
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through Python instead of
    # the default handler lets the folder above be removed.
    previous = signal.signal(signal.SIGTERM, _exit)
    remove_stale_private_folders()  # of servers killed with SIGKILL
    with tempfile.TemporaryDirectory(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-") as private:
        tempfile.tempdir = private
        try:
            # No limit_concurrency: uvicorn counts open sockets with it, so idle ones locked
            # real clients out; the app's RequestLimit counts requests (serve/connections.py).
            config = uvicorn.Config(app, log_level="info", http=TimedH11Protocol,
                                    limit_concurrency=None, timeout_keep_alive=5)  # fmt: skip
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            tempfile.tempdir = None
            sock.close()
            signal.signal(signal.SIGTERM, previous)


PRIVATE_PREFIX = "pneumocxr-serve-"


def remove_stale_private_folders() -> None:
    """Remove the private temporary folders (`pneumocxr-serve-PID-xxxx`) of servers whose
    process is gone; those of running servers, and older names without a PID, stay."""
    from pneumocxr.fileio.folders import process_alive

    for folder in Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*"):
        pid = folder.name[len(PRIVATE_PREFIX) :].split("-", 1)[0]
        by_pid = pid.isdigit() and folder.is_dir() and not folder.is_symlink()
        if by_pid and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


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
