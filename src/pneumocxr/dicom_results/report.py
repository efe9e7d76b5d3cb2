"""The Structured Report sent back for each input image (TID 1500 Measurement Report).

One measurement group says what the model found about pneumonia in the referenced image:
present, absent, or not assessed (UNCERTAIN, OUT_OF_SCOPE) with the reason as a comment; the
calibrated P(pneumonia) and the scope score as numbers when the network ran; the operating
threshold; and the algorithm (name, version, weights hash). docs/PACS.md shows the tree.
"""

from __future__ import annotations

import math

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from pneumocxr.dicom_results.evidence import instance_number
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.uids import device_uid, result_uid, series_uid

SR_SERIES_NUMBER = 9901
SR_SERIES_DESCRIPTION = "pneumocxr AI result: research software, not for diagnosis"
MANUFACTURER = "pneumocxr"
# Concepts no public coding scheme has; "99" schemes are local by the standard (PS3.3 8.2).
SCHEME = "99PNEUMOCXR"
PNEUMONIA = hd.sr.CodedConcept("233604007", "SCT", "Pneumonia")
NOT_ASSESSED = hd.sr.CodedConcept("NOT-ASSESSED", SCHEME, "Not assessed")
DECISION = hd.sr.CodedConcept("DECISION", SCHEME, "pneumocxr decision")
P_PNEUMONIA = hd.sr.CodedConcept("P-PNEUMONIA", SCHEME, "Calibrated probability of pneumonia")
THRESHOLD = hd.sr.CodedConcept("THRESHOLD", SCHEME, "Operating threshold")
SCOPE_SCORE = hd.sr.CodedConcept("SCOPE-SCORE", SCHEME, "Scope score (refused above 1)")
LABELS = ("NORMAL", "PNEUMONIA", "UNCERTAIN", "OUT_OF_SCOPE")
PROCEDURE = hd.sr.CodedConcept("399208008", "SCT", "Plain chest X-ray")


def build_report(evidence: Dataset, answer, info: ModelInfo) -> Dataset:
    """The SR for one input (`evidence`: its patient, study and image attributes) and its
    answer (an api.Prediction; p_pneumonia is NaN when the network did not run)."""
    source = evidence.SOPInstanceUID
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=result_uid("tracking", source, info.weights),
            identifier="pneumocxr pneumonia finding",
        ),
        finding_type=PNEUMONIA,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
        algorithm_id=_algorithm(info),
        measurements=_measurements(answer, info),
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(PNEUMONIA, _finding(answer.label)),
            hd.sr.QualitativeEvaluation(DECISION, _decision(answer.label)),
        ],
        source_images=[
            hd.sr.SourceImageForMeasurementGroup(evidence.SOPClassUID, evidence.SOPInstanceUID)
        ],
    )
    if answer.reason:
        _add_comment(group, f"not assessed: {answer.reason}")
    report = hd.sr.MeasurementReport(
        observation_context=_observer(info),
        procedure_reported=PROCEDURE,
        imaging_measurements=[group],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[evidence],
        content=report[0],
        series_instance_uid=series_uid("sr", evidence.StudyInstanceUID, info.weights),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=result_uid("sr", source, info.weights),
        instance_number=instance_number(evidence),
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
    )


def _finding(label: str) -> hd.sr.CodedConcept:
    if label == "PNEUMONIA":
        return codes.SCT.Present
    if label == "NORMAL":
        return codes.SCT.Absent
    return NOT_ASSESSED


def _decision(label: str) -> hd.sr.CodedConcept:
    """The label `pneumocxr predict` prints, as a code (for programs reading the SR)."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}")
    return hd.sr.CodedConcept(label, SCHEME, label.replace("_", " ").capitalize())


def _measurements(answer, info: ModelInfo) -> list[hd.sr.Measurement]:
    unit = codes.UCUM.NoUnits
    found = [hd.sr.Measurement(THRESHOLD, info.threshold, unit)]
    if answer.in_scope and math.isfinite(answer.p_pneumonia):  # meaningless out of scope
        found.insert(0, hd.sr.Measurement(P_PNEUMONIA, answer.p_pneumonia, unit))
    if answer.scope_score is not None and math.isfinite(answer.scope_score):
        found.append(hd.sr.Measurement(SCOPE_SCORE, answer.scope_score, unit))
    return found


def _algorithm(info: ModelInfo) -> hd.sr.AlgorithmIdentification:
    band = "none" if info.band is None else f"{info.band[0]:.4f}-{info.band[1]:.4f}"
    tempering = f"gamma {info.tempering:g}" if info.tempering else "none"
    return hd.sr.AlgorithmIdentification(
        name=info.name,
        version=info.version,
        parameters=[
            f"weights sha256 {info.weights}",
            f"threshold {info.threshold:.4f}",
            f"uncertain band {band}",
            f"shift tempering {tempering}",
        ],
    )


def _observer(info: ModelInfo) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid(info.weights),
        name=info.name[:64],
        manufacturer_name=MANUFACTURER,
        model_name=f"weights {info.short}",
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device)
    )


def _add_comment(group, text: str) -> None:
    """The reason in words (TID 1501 allows no free text; Comprehensive SR does)."""
    comment = hd.sr.TextContentItem(
        name=codes.DCM.Comment,
        value=text,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    group[0].ContentSequence.append(comment)
