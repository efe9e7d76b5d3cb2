"""The DICOM node against a real Orthanc: Orthanc C-STOREs real chest X-rays (DX) and
out-of-scope DICOMs to the node (REST /modalities/{id}/store); the node sends an SR (and, for
images in scope, a Grad-CAM Secondary Capture) back into each image's study, with the label
and P that `pneumocxr predict --json` gives for the same file. One Orthanc and one node (in
this process, the shipped model) serve the whole module."""

from __future__ import annotations

import io
import json
import logging
import math

import pydicom
import pytest
from pynetdicom import AE

from conftest import ROOT, cli, shared_images
from orthanc import Orthanc
from pacs_cases import (
    FAILURE,
    PATIENT_ID,
    PATIENT_NAME,
    bad_inputs,
    chest_dx,
    compressed,
    out_of_scope,
    read_report,
    sop_uid,
    xrays,
)
from pneumocxr.api import load_model
from pneumocxr.dicom.node import Node, NodeConfig
from pneumocxr.dicom.send import Destination
from pneumocxr.dicom_results.uids import result_uid

# the shipped weights' SHA-256, as the model folder records it: results name it
SHIPPED_WEIGHTS = json.loads((ROOT / "src/pneumocxr/weights/model.json").read_text())["weights"][
    "sha256"
]


class Remember(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logged():
    """Every log line of the module, from every logger (the node's and its libraries')."""
    handler, root, ours = Remember(), logging.getLogger(), logging.getLogger("pneumocxr")
    root.addHandler(handler)
    level, root.level = root.level, logging.DEBUG
    # The CLI's setup stops its logger's propagation; a test in this process may have run it.
    propagate, ours.propagate = ours.propagate, True
    yield handler.lines
    root.removeHandler(handler)
    root.level, ours.propagate = level, propagate


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as orthanc:
        yield orthanc


@pytest.fixture(scope="module")
def node(pacs, tmp_path_factory, logged):
    config = NodeConfig(
        port=0,
        spool=tmp_path_factory.mktemp("spool"),
        send_to=Destination(pacs.aet, "127.0.0.1", pacs.dicom_port),
        allow=[pacs.aet, "TESTSCU", "ROUTER"],
        retry_delay=0.05,
    )
    running = Node(load_model("default"), config)
    port = running.start()
    pacs.add_modality("pneumocxr", "PNEUMOCXR", port)
    running.port = port
    yield running
    running.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    cases = out_of_scope(folder / "outside")
    files = {f.stem: f for f in xrays(folder / "xrays")}
    files.update({name: path for name, (path, _) in cases.items()})
    files.update(compressed(folder / "compressed"))
    return files, {name: words for name, (_, words) in cases.items()}


@pytest.fixture(scope="module")
def sent(pacs, node, inputs):
    """Upload every input to Orthanc, have Orthanc C-STORE them to the node, and collect what
    came back: {input name: (its Orthanc study, [(result study, dataset), ...])}."""
    files, _ = inputs
    ids = {name: pacs.upload(path) for name, path in files.items()}
    response = pacs.store("pneumocxr", list(ids.values()))
    assert response.status_code == 200, response.text
    assert node.wait_idle(120)
    by_uid = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: n for n, p in files.items()
    }
    results = {name: [] for name in files}
    for dataset, study in _results(pacs):
        source = (
            read_report(dataset)["source"] if dataset.Modality == "SR" else _capture_source(dataset)
        )
        results[by_uid[source]].append((study, dataset))
    return {
        name: (pacs.get(f"/instances/{ids[name]}/study")["ID"], found)
        for name, found in results.items()
    }


def _results(pacs):
    """(dataset, Orthanc study ID) of every instance of pneumocxr's result series."""
    for series in pacs.get("/series?expand"):
        if series["MainDicomTags"].get("SeriesDescription", "").startswith("pneumocxr "):
            for instance in series["Instances"]:
                yield pydicom.dcmread(io.BytesIO(pacs.file(instance))), series["ParentStudy"]


def _capture_source(ds) -> str:
    return str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)


def test_every_input_gets_one_sr_in_its_study_with_predicts_answer(inputs, sent):
    files, reasons = inputs
    expected = {}
    for line in cli("predict", "--json", *files.values()).stdout.splitlines():
        answer = json.loads(line)
        expected[answer["path"]] = answer
    for name, (study, found) in sent.items():
        reports = [(s, ds) for s, ds in found if ds.Modality == "SR"]
        assert len(reports) == 1, f"{name}: {len(reports)} SRs"
        report_study, report = reports[0]
        assert report_study == study  # the input's own study in Orthanc
        said, want = read_report(report), expected[str(files[name])]
        assert said["label"] == want["label"], name
        assert report.PatientID == pydicom.dcmread(files[name], stop_before_pixels=True).PatientID
        finding = {"PNEUMONIA": "Present", "NORMAL": "Absent"}.get(want["label"], "Not assessed")
        assert said["finding"] == finding
        assert said.get("comment", "") == (
            f"not assessed: {want['reason']}" if want["reason"] else ""
        )
        if want["in_scope"]:
            assert math.isclose(said["P-PNEUMONIA"], want["p_pneumonia"], abs_tol=1e-6), name
        else:
            assert "P-PNEUMONIA" not in said  # no probability for an image it does not know
            assert reasons.get(name, "") in said["comment"]
        assert f"weights sha256 {SHIPPED_WEIGHTS[:12]}" in " ".join(said["parameters"])
        assert "shift tempering gamma 0.5" in said["parameters"]
        assert said["algorithm"] == "default (efficientnet-lite0)"


def test_the_answers_are_those_expected_of_the_cases(inputs, sent):
    files, reasons = inputs
    labels = {
        name: read_report(ds)["label"]
        for name, (_, found) in sent.items()
        for _, ds in found
        if ds.Modality == "SR"
    }
    assert all(labels[name] == "OUT_OF_SCOPE" for name in reasons)
    answered = [labels[f"xray{i}"] for i in range(4)]
    assert answered[:2] == ["NORMAL", "NORMAL"] and "PNEUMONIA" in answered[2:]
    assert set(answered) <= {"NORMAL", "PNEUMONIA", "UNCERTAIN"}  # this set has one UNCERTAIN
    p = {
        name: read_report(ds).get("P-PNEUMONIA")
        for name, (_, found) in sent.items()
        for _, ds in found
        if ds.Modality == "SR"
    }
    for lossless in ("j2k", "jpegls", "rle"):  # decoded by the pylibjpeg plugins, same pixels
        assert p[lossless] == pytest.approx(p["plain"], abs=1e-6)


def test_images_in_scope_get_a_non_diagnostic_capture(sent):
    for name, (study, found) in sent.items():
        captures = [(s, ds) for s, ds in found if ds.Modality != "SR"]
        label = next(read_report(ds)["label"] for _, ds in found if ds.Modality == "SR")
        if label == "OUT_OF_SCOPE":
            assert captures == [], name
            continue
        assert len(captures) == 1, name
        capture_study, capture = captures[0]
        assert capture_study == study
        assert capture.BurnedInAnnotation == "YES"
        assert "NOT FOR DIAGNOSTIC USE" in capture.SeriesDescription
        assert "DERIVED" in capture.ImageType
        assert capture.pixel_array.shape[2] == 3 and max(capture.Rows, capture.Columns) == 512
        top = capture.pixel_array[: capture.Rows // 20]
        assert (top.reshape(-1, 3) == [255, 255, 0]).all(axis=1).sum() > 100  # the warning text


def test_results_of_one_study_share_one_series_per_kind(sent):
    series = {ds.SeriesInstanceUID for _, ds in sent["xray0"][1] + sent["xray1"][1]}
    assert len(series) == 2  # xray0 and xray1 share a study: one SR and one SC series


def test_a_resent_image_replaces_its_results_instead_of_duplicating(pacs, node, inputs, sent):
    before = len(pacs.instances())
    delivered = node.delivery.sent
    image = pacs.upload(inputs[0]["xray2"])  # already there: Orthanc answers with its ID
    assert pacs.store("pneumocxr", [image]).status_code == 200
    assert node.wait_idle(60)
    assert node.delivery.sent == delivered + 1  # scored and sent again...
    assert len(pacs.instances()) == before  # ...and the PACS replaced the copy it had


def test_a_disallowed_calling_ae_title_is_rejected_at_association(node):
    pending = len(node.spool.pending())
    stranger = AE(ae_title="INTRUDER")
    stranger.add_requested_context("1.2.840.10008.1.1")
    assoc = stranger.associate("127.0.0.1", node.port, ae_title="PNEUMOCXR")
    assert assoc.is_rejected and not assoc.is_established
    wrong_called = AE(ae_title="TESTSCU")
    wrong_called.add_requested_context("1.2.840.10008.1.1")
    assoc = wrong_called.associate("127.0.0.1", node.port, ae_title="SOMEONEELSE")
    assert assoc.is_rejected
    assert len(node.spool.pending()) == pending


@pytest.mark.filterwarnings("ignore:Expected explicit VR")  # pydicom, reading the garbage
def test_bad_input_gets_a_failure_status_and_the_node_goes_on(node, tmp_path, monkeypatch):
    from pynetdicom import _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # the bytes as they are
    cases = bad_inputs(tmp_path)
    scu = AE(ae_title="TESTSCU")
    for path, _ in cases.values():
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        scu.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    scored = node.worker.scored
    assoc = scu.associate("127.0.0.1", node.port, ae_title="PNEUMOCXR")
    answers = {}
    for name in cases:
        status = assoc.send_c_store(cases[name][0])
        answers[name] = (status.Status, str(status.get("ErrorComment", "")))
    assoc.release()
    for name, (_, expected) in cases.items():
        if expected == FAILURE:  # garbage may be read as a data set without UIDs, or not at all
            assert answers[name][0] in (0xA900, 0xC000), (name, answers[name])
        else:
            assert answers[name][0] == expected, (name, answers[name])
    assert "too large" in answers["huge_frames"][1]
    assert "StudyInstanceUID" in answers["no_study"][1]
    assert "MPEG" in answers["mpeg2"][1] or "decode" in answers["mpeg2"][1]
    assert node.wait_idle(60)
    assert node.worker.scored == scored + 2  # the first and last; nothing refused was spooled
    assert node.spool.pending() == [] and not any(node.spool.failed.iterdir())


def test_logs_name_uids_never_patients(sent, logged, inputs):
    files, _ = inputs
    text = "\n".join(logged)
    assert "scored " in text and "delivered results of " in text and "refused " in text
    secrets = {PATIENT_ID, *PATIENT_NAME.split("^")}
    for path in files.values():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        secrets |= {str(ds.get("PatientID", "")), *str(ds.get("PatientName", "")).split("^")}
    secrets = {s for s in secrets if len(s) >= 3}
    assert not [s for s in secrets if s in text]


def test_the_documented_lua_rule_routes_chest_radiographs_only(node, pacs, inputs, tmp_path):
    """examples/orthanc/route-to-pneumocxr.lua (docs/PACS.md) in a second Orthanc: a chest DX
    is routed to the node, whose SR reaches the PACS; a CT and a hand are not routed."""
    files, _ = inputs
    received = node.receiver.received
    script = ROOT / "examples/orthanc/route-to-pneumocxr.lua"
    with Orthanc(tmp_path, aet="ROUTER", LuaScripts=[str(script)]) as router:
        router.add_modality("pneumocxr", "PNEUMOCXR", node.port)
        fresh = chest_dx(tmp_path / "routed.dcm", shared_images("PNEUMONIA", 1, 90)[0])
        for path in (files["ct"], files["hand"], fresh):  # the DX last: routed in order
            router.upload(path)
        target = result_uid("sr", sop_uid(fresh), node.info.weights)
        assert pacs.wait_for(lambda: pacs.lookup(target), timeout=60)
    assert node.receiver.received == received + 1  # the DX only
