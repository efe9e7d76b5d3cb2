"""`pneumocxr dicom score` against a real Orthanc's DICOMweb plugin (QIDO-RS, WADO-RS,
STOW-RS): the same results as the node, stored into each study, and idempotent; and the API's
`Model.dicom_results` on a pydicom Dataset."""

from __future__ import annotations

import io
import json
import math

import pydicom
import pytest
from typer.testing import CliRunner

from conftest import cli
from orthanc import Orthanc
from pacs_cases import chest_dx, out_of_scope, read_report, xrays
from pneumocxr.api import load_model
from pneumocxr.cli import app
from pneumocxr.dicom_results.uids import result_uid
from pneumocxr.errors import PneumoError


@pytest.fixture(scope="module")
def model():
    return load_model("default")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """An Orthanc holding 3 X-rays (two studies) and a lateral view and a CT."""
    folder = tmp_path_factory.mktemp("web")
    cases = out_of_scope(folder / "outside")
    files = xrays(folder / "xrays", normal=1, pneumonia=2)
    files += [cases["lateral"][0], cases["ct"][0]]
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as pacs:
        for path in files:
            pacs.upload(path)
        yield pacs, files


def _run(*args):
    result = CliRunner().invoke(app, ["dicom", "score", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _reports(pacs) -> dict:
    found = {}
    for series in pacs.get("/series?expand"):
        if series["MainDicomTags"].get("Modality") == "SR":
            for instance in series["Instances"]:
                ds = pydicom.dcmread(io.BytesIO(pacs.file(instance)))
                found.setdefault(read_report(ds)["source"], []).append((ds, series["ParentStudy"]))
    return found


def test_score_by_study_then_since_a_date_stores_results_once(stored, model):
    pacs, files = stored
    url = f"{pacs.url}/dicom-web"
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    first_study = str(headers[0].StudyInstanceUID)  # xray0 and xray1 share it
    assert _run("--url", url, "--study", first_study).startswith("1 study: 2 scored, 0 already")
    output = _run("--url", url, "--since", "2000-01-01")  # every study: the rest is new
    assert "3 scored, 2 already scored" in output
    count = len(pacs.instances())
    again = _run("--url", url, "--since", "2000-01-01")
    assert "0 scored, 5 already scored" in again and len(pacs.instances()) == count

    reports = _reports(pacs)
    expected = {
        json.loads(line)["path"]: json.loads(line)
        for line in cli("predict", "--json", *files).stdout.splitlines()
    }
    weights = model.meta["weights"]["sha256"]
    for path, header in zip(files, headers):
        uid = str(header.SOPInstanceUID)
        assert len(reports[uid]) == 1
        report, study = reports[uid][0]
        assert report.StudyInstanceUID == header.StudyInstanceUID
        assert report.SOPInstanceUID == result_uid("sr", uid, weights)  # the node's UID too
        said, want = read_report(report), expected[str(path)]
        assert said["label"] == want["label"]
        if want["in_scope"]:
            assert math.isclose(said["P-PNEUMONIA"], want["p_pneumonia"], abs_tol=1e-6)


def test_bad_arguments_are_one_line_errors(stored):
    pacs, _ = stored
    for args, words in [
        (["--url", f"{pacs.url}/dicom-web"], "either --study"),
        (["--url", f"{pacs.url}/dicom-web", "--since", "last week"], "YYYY-MM-DD"),
        (["--url", "ftp://x", "--study", "1.2.3"], "give the DICOMweb root"),
        (["--url", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3"], "cannot reach"),
    ]:
        result = CliRunner().invoke(app, ["dicom", "score", *args])
        assert isinstance(result.exception, PneumoError) and words in str(result.exception)


def test_the_api_scores_a_dataset(model, tmp_path):
    from conftest import shared_images

    path = chest_dx(tmp_path / "a.dcm", shared_images("PNEUMONIA", 1, 60)[0])
    ds = pydicom.dcmread(path)
    result, expected = model.dicom_results(ds), model.predict(path)
    assert result.prediction.label == expected.label
    assert math.isclose(result.prediction.p_pneumonia, expected.p_pneumonia, abs_tol=1e-6)
    assert result.report.Modality == "SR" and result.capture.BurnedInAnnotation == "YES"
    assert result.report.StudyInstanceUID == ds.StudyInstanceUID
    again = model.dicom_results([path], heatmap=False)[0]
    assert again.report.SOPInstanceUID == result.report.SOPInstanceUID  # deterministic
    assert again.capture is None
    ds.StudyInstanceUID = ""
    with pytest.raises(PneumoError, match="no StudyInstanceUID"):
        model.dicom_results(ds)
