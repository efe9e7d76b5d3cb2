"""Inputs that made commands wait forever or walk the whole machine: a named pipe listed as an
image, one path given where a list was expected, a link to `/` in a data folder. Each test
fails (it does not hang) on code that still has the flaw."""

from __future__ import annotations

import logging
import os

import pytest

from conftest import make_subset, shared_images
from in_process import fifo_watchdog, run_cli


def _labelled_folder(folder):
    """Six X-rays (links to the shared ones), two named pipes, and a labels CSV of them all."""
    folder.mkdir()
    rows = ["path,label"]
    for label in ("NORMAL", "PNEUMONIA"):
        for image in shared_images(label, 3):
            (folder / image.name).symlink_to(image)
            rows.append(f"{image.name},{label}")
    fifos = [folder / "scan", folder / "pipe.dcm"]  # DICOMs often have no suffix
    for fifo in fifos:
        os.mkfifo(fifo)
        rows.append(f"{fifo.name},NORMAL")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv", fifos


def test_a_named_pipe_in_a_labels_csv_is_refused_never_opened(tmp_path):
    labels, fifos = _labelled_folder(tmp_path / "images")
    with fifo_watchdog(fifos) as fired:
        result = run_cli("split", "--labels", labels, "--out", tmp_path / "s")
    assert not fired, "a named pipe was opened: without the watchdog this waits forever"
    assert result.returncode == 1 and not (tmp_path / "s").exists()
    assert result.stderr == (
        f"error: 2 file(s) listed in {labels} are not regular files: scan (a named pipe), "
        "pipe.dcm (a named pipe)\n"
    )


def test_nothing_that_hashes_or_sniffs_a_file_opens_a_named_pipe(tmp_path):
    from pneumocxr.data.dataset import _digest
    from pneumocxr.data.dicom import dicom_patient, is_dicom, shown_header
    from pneumocxr.dicom_results.scoring import read_header
    from pneumocxr.errors import PneumoError
    from pneumocxr.evaluation.ratings import read_ratings
    from pneumocxr.fileio.formats import read_json, sha256_file
    from pneumocxr.serve.loadtest import load_test

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with fifo_watchdog([fifo]) as fired:
        assert not is_dicom(fifo) and dicom_patient(fifo) is None and shown_header(fifo) is None
        assert _digest(fifo) is None  # the external set's overlap check
        for read in (sha256_file, read_json, read_header, read_ratings):
            with pytest.raises(PneumoError, match="not a regular file \\(a named pipe\\)"):
                read(fifo)
        with pytest.raises(PneumoError, match="not a regular file"):  # before any request
            load_test("http://127.0.0.1:9", [fifo])
    assert not fired


def test_one_path_as_a_string_is_one_file_not_its_characters(monkeypatch):
    import pneumocxr.inference.inputs as inputs
    from pneumocxr.api import load_model

    def walk(root, strict=False):  # "/", the first character, was walked: the whole disk
        raise AssertionError(f"walked the folder {root}")

    monkeypatch.setattr(inputs, "walk_files", walk)
    image = str(shared_images("NORMAL", 1)[0])
    found, failures = load_model("default").predict_paths(image)
    assert [f.path for f in found] == [image] and failures == []


def test_a_link_to_a_folder_above_the_data_is_not_walked(tmp_path, caplog):
    from pneumocxr.data.index import index_images

    around = tmp_path / "disk"
    data = make_subset(around / "home" / "data", 3, 3)
    make_subset(around / "elsewhere", 2, 2, start=40)  # beside the data: never indexed
    (data / "NORMAL" / "disk").symlink_to(around)  # as a link to / would be
    (data / "PNEUMONIA" / "root").symlink_to("/")
    with caplog.at_level(logging.WARNING, "pneumocxr"):
        table = index_images(data)
    assert len(table) == 6
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("2 symlink loops not followed") and "root -> /:" in said
