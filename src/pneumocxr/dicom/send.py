"""Sending results by C-STORE to a PACS (`--send-to AET@HOST:PORT`).

One association is kept open while there is something to send and released when the queue
is empty. Any failure (no association, a rejected or aborted one, a status other than
success or warning) raises DeliveryError; the delivery thread retries and, in the end, puts
the results in the dead-letter folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pneumocxr.errors import PneumoError

SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image
_DESTINATION = re.compile(
    r"(?P<aet>[^@]{1,16})@(?P<host>[^:@\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})"
)


class DeliveryError(Exception):
    """The destination did not take a result (the reason is safe to log: no patient data)."""


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        """AET@HOST:PORT, as `--send-to` takes it."""
        found = _DESTINATION.fullmatch(text.strip())
        if not found or not 0 < int(found["port"]) < 65536:
            raise PneumoError(
                f"--send-to {text!r}: give the destination as AET@HOST:PORT "
                "(e.g. ORTHANC@127.0.0.1:4242)"
            )
        check_ae_title(found["aet"], "--send-to")
        return cls(found["aet"], found["host"].strip("[]"), int(found["port"]))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(title: str, option: str) -> str:
    """An AE title: 1 to 16 characters, no backslash or control character (PS3.5 6.2)."""
    if not 0 < len(title.strip()) <= 16 or any(c == "\\" or ord(c) < 32 for c in title):
        raise PneumoError(f"{option} {title!r}: an AE title is 1 to 16 characters, no backslash")
    return title.strip()


class StoreClient:
    """C-STORE of result files to one destination, over a kept-open association."""

    def __init__(self, destination: Destination, calling_ae: str, timeout: float = 30):
        from pynetdicom import AE

        self.destination = destination
        self.ae = AE(ae_title=calling_ae)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = timeout
        for sop_class in (SR_STORAGE, SC_STORAGE):
            self.ae.add_requested_context(
                sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
            )
        self.assoc = None

    def send(self, paths: list[Path]) -> None:
        for path in paths:
            ds = pydicom.dcmread(path)
            status = self._association().send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None:  # no answer: the association was aborted or timed out
                self.release()
                raise DeliveryError(f"no answer from {self.destination} (connection lost)")
            if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:  # success or warning
                comment = str(getattr(status, "ErrorComment", "") or "")[:120]
                raise DeliveryError(f"{self.destination} refused it: status 0x{code:04X} {comment}")

    def release(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()
        self.assoc = None

    def _association(self):
        if self.assoc is not None and self.assoc.is_established:
            return self.assoc
        d = self.destination
        self.assoc = self.ae.associate(d.host, d.port, ae_title=d.ae_title)
        if not self.assoc.is_established:
            why = "rejected" if self.assoc.is_rejected else "not possible (no answer)"
            self.assoc = None
            raise DeliveryError(f"association with {d} {why}")
        return self.assoc
