"""The Storage SCP: what the node answers to each association and C-STORE.

Statuses (PS3.4 B.2.3): 0x0000 once the instance is durably spooled; 0xA700 (out of
resources) when the spool cannot take it; 0xA900 (data set does not match SOP class) without
the UIDs its results need; 0xC000 (cannot understand) when it is not a readable DICOM image
(damaged, truncated, a transfer syntax no installed decoder reads, too large); 0xC001 for a
bug. The error comment says why, without any patient data.
"""

from __future__ import annotations

import io
import logging
import time

from pydicom.dataset import Dataset

from pneumocxr.dicom.spool import Spool
from pneumocxr.dicom_results.evidence import uid_problem
from pneumocxr.dicom_results.scoring import decode, read_header
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.atomic import is_disk_full

log = logging.getLogger("pneumocxr.dicom")
SUCCESS, OUT_OF_RESOURCES, NOT_MATCHING, CANNOT_UNDERSTAND, INTERNAL = (
    0x0000,
    0xA700,
    0xA900,
    0xC000,
    0xC001,
)
VERIFICATION = "1.2.840.10008.1.1"
SLOW_SECONDS = 5.0


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class Receiver:
    def __init__(self, spool: Spool, scored_next):
        self.spool = spool
        self.queue = scored_next  # called with each spooled UID
        self.received = self.refused = 0

    def listen(self, ae_title: str, host: str, port: int, allow: list[str]):
        """Start the SCP in its own threads; returns pynetdicom's server."""
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        _quiet_pynetdicom()
        ae = AE(ae_title=ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        ae.require_called_aet = True  # a PACS configured with another title is told so
        ae.require_calling_aet = list(allow)
        ae.maximum_associations = 16
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_REJECTED, _on_rejected),
            (evt.EVT_ABORTED, _on_aborted),
        ]
        return ae.start_server((host, port), block=False, evt_handlers=handlers)

    def _on_store(self, event) -> Dataset:
        calling, start = _calling(event), time.monotonic()
        try:
            uid = self.receive(event.encoded_dataset())
        except Refused as err:
            self.refused += 1
            log.warning("refused an instance from %s: %s (status 0x%04X)", calling, err, err.status)
            return _status(err.status, str(err))
        except Exception as err:  # a bug: the peer gets a failure, the node keeps running
            self.refused += 1
            log.error("internal error on an instance from %s (%s)", calling, type(err).__name__)
            return _status(INTERNAL, "internal error")
        self.received += 1
        self.queue(uid)
        took = time.monotonic() - start
        if took > SLOW_SECONDS:  # a PACS gives up after 10 to 30 s: say why it might have
            log.warning("storing %s took %.1f s (a slow disk?)", uid, took)
        return _status(SUCCESS, "")

    def receive(self, data: bytes) -> str:
        """Check an instance and spool it; its SOP Instance UID, or Refused."""
        try:
            header = read_header(io.BytesIO(data))
        except PneumoError:
            raise Refused(CANNOT_UNDERSTAND, "not a readable DICOM data set") from None
        problem = uid_problem(header)
        if problem:
            raise Refused(NOT_MATCHING, problem)
        try:
            decode(data)  # before acknowledging: an image the node could never read is refused
        except PneumoError as err:
            raise Refused(CANNOT_UNDERSTAND, str(err)) from None
        uid = str(header.SOPInstanceUID)
        try:
            self.spool.accept(uid, data)
        except OSError as err:
            why = "spool disk full" if is_disk_full(err) else f"spool not writable ({err.strerror})"
            raise Refused(OUT_OF_RESOURCES, why) from None
        return uid


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]  # LO
    return status


def _calling(event) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip() or "?"
    except Exception:  # an association torn down meanwhile
        return "?"


def _on_rejected(event) -> None:
    address = getattr(event.assoc.requestor, "address", "?")
    log.warning(
        "association from %s (%s) rejected: calling AE title not allowed or wrong called AE title",
        _calling(event),
        address,
    )


def _on_aborted(event) -> None:
    log.warning("association from %s aborted", _calling(event))


def _quiet_pynetdicom() -> None:
    """pynetdicom logs every message it exchanges (and, at debug level, datasets): the node
    logs its own one-line events instead."""
    from pynetdicom import _config

    _config.LOG_HANDLER_LEVEL = "none"
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL + 1)
