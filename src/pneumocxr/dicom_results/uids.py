"""Deterministic UIDs for results.

A result's UIDs come from the input's UID and the model's weights hash alone, so scoring the
same instance again with the same weights (after a restart, a re-send, a second DICOMweb run)
makes the same UIDs, and a PACS replaces the earlier copy instead of keeping two.
"""

from __future__ import annotations

import re

from pydicom.uid import generate_uid

# Characters of a UID as a spool file name: digits and dots, at most 64 (PS3.5 9.1).
_UID = re.compile(r"[0-9][0-9.]{0,63}")


def result_uid(kind: str, source_uid: str, weights_sha256: str) -> str:
    """The SOP Instance UID of the `kind` result ("sr", "sc") of the instance `source_uid`."""
    return generate_uid(entropy_srcs=["pneumocxr", kind, source_uid, weights_sha256])


def series_uid(kind: str, study_uid: str, weights_sha256: str) -> str:
    """One results series per study, kind and model: all SRs of a study sit together."""
    return generate_uid(entropy_srcs=["pneumocxr series", kind, study_uid, weights_sha256])


def device_uid(weights_sha256: str) -> str:
    """The SR's observer device: the model, identified by its weights."""
    return generate_uid(entropy_srcs=["pneumocxr device", weights_sha256])


def is_safe_uid(value) -> bool:
    """A UID that is safe as a file name (digits and dots, starting with a digit)."""
    return isinstance(value, str) and _UID.fullmatch(value) is not None and ".." not in value
