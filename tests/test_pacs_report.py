"""The SR copies the node makes from a first SR of the same shape are the SRs highdicom builds
for their inputs (report_cache.py), and what each result says."""

from __future__ import annotations

import math

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs_cases import DX_STORAGE, read_report
from pneumocxr.api import Prediction
from pneumocxr.dicom_results.evidence import evidence_of
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.report import build_report
from pneumocxr.dicom_results.report_cache import ReportCache

INFO = ModelInfo("test model", "pneumocxr 0.1.0, today", "ab" * 32, 0.4, (0.2, 0.55))
CHANGING = {"InstanceCreationDate", "InstanceCreationTime", "ContentDate", "ContentTime"}


def header(name: str, **extra) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = name, f"ID-{name}", "DX"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20261201", "101500", f"A{len(name)}"
    ds.InstanceNumber = len(name)
    for key, value in extra.items():
        setattr(ds, key, value)
    return ds


def answer(label: str, p: float, score: float | None = 0.3, reason: str = "") -> Prediction:
    in_scope = label != "OUT_OF_SCOPE"
    return Prediction(None, label, p, in_scope, score, reason, math.nan, INFO.threshold)


def _comparable(ds: Dataset) -> dict:
    """The data set as JSON, without the times it was made at."""
    from pydicom.datadict import tag_for_keyword

    found = ds.to_json_dict()
    for keyword in CHANGING:
        found.pop(f"{tag_for_keyword(keyword):08X}", None)
    equipment = found.get("0018A001", {}).get("Value", [{}])[0]
    equipment.pop("0018A002", None)  # Contribution DateTime
    return found


CASES = [
    ("Doe^Jane", {}, answer("PNEUMONIA", 0.93)),
    ("Roe^Rick", {}, answer("PNEUMONIA", 0.71)),
    ("Poe^Edgar", {"StudyDescription": "CHEST PA"}, answer("NORMAL", 0.01)),
    ("Lee^Ann", {"StudyDescription": "THORAX"}, answer("NORMAL", 0.123456789)),
    ("Kim^Jo", {}, answer("UNCERTAIN", 0.41, reason="uncertain: have a person look")),
    ("Kay^Al", {}, answer("UNCERTAIN", 0.5, reason="uncertain: have a person look")),
    ("Ng^Bo", {}, answer("OUT_OF_SCOPE", math.nan, None, "DICOM modality CT: not a radiograph")),
    ("Ox^Cy", {}, answer("OUT_OF_SCOPE", math.nan, None, "DICOM view LL: a lateral view")),
    ("Ma^Di", {}, answer("OUT_OF_SCOPE", 0.8, 1.7, "unlike the chest X-rays (score 1.70)")),
    ("Lu^Ed", {}, answer("OUT_OF_SCOPE", 0.2, 2.5, "unlike the chest X-rays (score 2.50)")),
]


def test_copies_equal_what_highdicom_builds():
    cache = ReportCache(INFO)
    for name, extra, said in CASES:
        evidence = evidence_of(header(name, **extra))
        fast, reference = cache.build(evidence, said), build_report(evidence, said, INFO)
        assert _comparable(fast) == _comparable(reference), name
    assert len(cache._shapes) == 5  # one highdicom build per shape, the rest copied


@pytest.mark.parametrize("name, extra, said", CASES[::3])
def test_each_report_says_its_answer(name, extra, said):
    source = header(name, **extra)
    cache = ReportCache(INFO)
    cache.build(evidence_of(header("First^One", **extra)), said)  # the shape's first
    found = read_report(cache.build(evidence_of(source), said))
    assert found["source"] == source.SOPInstanceUID and found["label"] == said.label
    assert found["THRESHOLD"] == pytest.approx(0.4)
    if said.label in ("NORMAL", "PNEUMONIA"):
        assert found["P-PNEUMONIA"] == pytest.approx(said.p_pneumonia)
    if said.reason:
        assert found["comment"] == f"not assessed: {said.reason}"
