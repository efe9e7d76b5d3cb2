"""SRs at the node's pace: highdicom builds the first SR of each shape, later ones are a copy
of it with their own values put in.

highdicom validates and copies as it builds, about 20-35 ms an SR on two busy cores: as long as
the forward pass of an image. An SR of the same shape (the same label, the same measurements,
the same input attributes present) differs only in its UIDs, patient and study attributes,
times, numbers and source reference. Re-reading the first one's bytes is lazy, and elements
left untouched are written back as read, so a copy costs a few milliseconds.
tests/test_pacs_report.py checks that a copy equals what highdicom builds for the same input.
"""

from __future__ import annotations

import datetime
import functools
import io
import math

import pydicom
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DS, DT, TM

from pneumocxr.dicom_results.evidence import PATIENT_STUDY, instance_number
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.report import build_report
from pneumocxr.dicom_results.uids import result_uid, series_uid

# Measurement group items that hold a value of their own input, by concept code.
_TRACKING_UID, _COMMENT, _SOURCE = "112040", "121106", "121112"
_NUMBERS = {"P-PNEUMONIA": "p_pneumonia", "SCOPE-SCORE": "scope_score"}


@functools.lru_cache(maxsize=4)
def reports_for(info: ModelInfo) -> ReportCache:
    return ReportCache(info)


class ReportCache:
    def __init__(self, info: ModelInfo):
        self.info = info
        self._shapes: dict[tuple, bytes] = {}

    def build(self, evidence: Dataset, answer) -> Dataset:
        """The SR `report.build_report` makes for this input and answer."""
        shape = _shape(evidence, answer)
        encoded = self._shapes.get(shape)
        if encoded is None:
            report = build_report(evidence, answer, self.info)
            self._shapes[shape] = _encode(report)
            return report
        report = pydicom.dcmread(io.BytesIO(encoded))
        _fill(report, evidence, answer, self.info)
        return report


def _shape(evidence: Dataset, answer) -> tuple:
    present = tuple(name for name in (*PATIENT_STUDY, "SpecificCharacterSet") if name in evidence)
    return (
        answer.label,
        _finite(answer.p_pneumonia) and answer.in_scope,
        _finite(answer.scope_score),
        bool(answer.reason),
        present,
    )


def _fill(report: Dataset, evidence: Dataset, answer, info: ModelInfo) -> None:
    source, study = evidence.SOPInstanceUID, evidence.StudyInstanceUID
    uid = result_uid("sr", source, info.weights)
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = uid
    report.SeriesInstanceUID = series_uid("sr", study, info.weights)
    report.InstanceNumber = instance_number(evidence)
    for name in (*PATIENT_STUDY, "SpecificCharacterSet"):
        if name in evidence:
            report[name].value = evidence[name].value
    now = datetime.datetime.now()
    report.InstanceCreationDate = report.ContentDate = DA(now.date())
    report.InstanceCreationTime = report.ContentTime = TM(now.time())
    report.ContributingEquipmentSequence[0].ContributionDateTime = DT(now)
    cited = report.CurrentRequestedProcedureEvidenceSequence[0]
    cited.StudyInstanceUID = study
    cited.ReferencedSeriesSequence[0].SeriesInstanceUID = evidence.SeriesInstanceUID
    _reference(cited.ReferencedSeriesSequence[0].ReferencedSOPSequence[0], evidence)
    _fill_group(_group(report), evidence, answer, info)


def _fill_group(group: Dataset, evidence: Dataset, answer, info: ModelInfo) -> None:
    for item in group.ContentSequence:
        code = item.ConceptNameCodeSequence[0].CodeValue
        if code == _TRACKING_UID:
            item.UID = result_uid("tracking", evidence.SOPInstanceUID, info.weights)
        elif code in _NUMBERS:
            value = float(getattr(answer, _NUMBERS[code]))
            measured = item.MeasuredValueSequence[0]
            measured.NumericValue = DS(value, auto_format=True)
            measured.FloatingPointValue = value
        elif code == _COMMENT:
            item.TextValue = f"not assessed: {answer.reason}"
        elif code == _SOURCE:
            _reference(item.ReferencedSOPSequence[0], evidence)


def _group(report: Dataset) -> Dataset:
    """The measurement group: inside the Imaging Measurements container, the last root item."""
    return report.ContentSequence[-1].ContentSequence[0]


def _reference(item: Dataset, evidence: Dataset) -> None:
    item.ReferencedSOPClassUID = evidence.SOPClassUID
    item.ReferencedSOPInstanceUID = evidence.SOPInstanceUID


def _encode(report: Dataset) -> bytes:
    buffer = io.BytesIO()
    report.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)
