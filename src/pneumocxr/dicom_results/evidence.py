"""What a result copies from its input: the patient, the study and the image reference.

Results belong to the input's study, so they carry its patient and study attributes. They
are copied into a fresh dataset, and a value that is not valid for its type is left empty
rather than copied: the SR and Secondary Capture builders check what they write, and one
malformed date in an input must not stop its result.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset

# Patient and General Study modules, plus what a reference to the image needs.
PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyDescription",
)
IMAGE = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "Modality", "InstanceNumber")
# Type 2 attributes the builders read even when the input lacks them.
REQUIRED_EMPTY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_FORMATS = {
    "DA": re.compile(r"\d{8}"),
    "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"),
    "CS": re.compile(r"[A-Z0-9 _]{0,16}"),
    "IS": re.compile(r"[+-]?\d{1,12}"),
    "UI": re.compile(r"[0-9.]{1,64}"),
}
_ORIENTATION = re.compile(r"[APLRHF]{1,3}")
_MAX_LENGTH = {"SH": 16, "LO": 64, "PN": 64 * 5}


def evidence_of(header: Dataset) -> Dataset:
    """A dataset with the input's patient, study and image attributes, each valid or empty."""
    ref = Dataset()
    for name in PATIENT_STUDY + IMAGE:
        value = _valid(header, name)
        if value is not None:
            setattr(ref, name, value)
    for name in REQUIRED_EMPTY:
        if name not in ref:
            setattr(ref, name, None)
    if "SpecificCharacterSet" in header:
        ref.SpecificCharacterSet = header.SpecificCharacterSet
    ref.PatientOrientation = orientation_of(header)
    return ref


def orientation_of(header: Dataset) -> list[str]:
    """The image's row and column directions (PatientOrientation), or those of a frontal chest
    radiograph as it is displayed (the patient's left, then feet) when it has none."""
    value = header.get("PatientOrientation")
    try:
        found = [str(v) for v in value] if value is not None else []
    except TypeError:
        found = []
    if len(found) == 2 and all(_ORIENTATION.fullmatch(v) for v in found):
        return found
    return ["L", "F"]


def instance_number(evidence: Dataset) -> int:
    """The input's own number, so results sort like their images in a viewer."""
    try:
        return max(1, int(evidence.get("InstanceNumber") or 1))
    except (TypeError, ValueError):
        return 1


def _valid(header: Dataset, name: str):
    try:
        elem = header[name]
        value = elem.value
        vr = str(elem.VR)
    except Exception:  # absent or damaged: leave it out
        return None
    if value is None or value == "":
        return None
    if vr in _FORMATS:
        text = str(value).strip()
        return text if _FORMATS[vr].fullmatch(text) else None
    text = str(value)
    if vr in _MAX_LENGTH and len(text) > _MAX_LENGTH[vr]:
        return None
    return value if vr == "PN" else text


# What every input needs: results join its study and series and point at it.
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def uid_problem(header: Dataset) -> str | None:
    """Why results could not be made for this input's identity, or None."""
    from pneumocxr.dicom_results.uids import is_safe_uid

    for name in REQUIRED_UIDS:
        try:
            value = str(header.get(name) or "").strip()
        except Exception:  # a damaged element
            value = ""
        if not value:
            return f"no {name}"
        if not is_safe_uid(value):
            return f"{name} is not a valid UID"
    return None
