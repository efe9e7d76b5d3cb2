"""A command never writes over a file it was given as input or that it did not make."""

from __future__ import annotations

import shutil

from conftest import cli_batch, make_subset, shared_images


def test_csv_never_overwrites_an_input_or_a_strangers_file(tmp_path):
    scans = [tmp_path / "scan1.jpeg", tmp_path / "scan2.jpeg"]
    for source, scan in zip(shared_images("NORMAL", 2), scans):
        shutil.copy(source, scan)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    earlier = tmp_path / "earlier.csv"
    before = {p: p.read_bytes() for p in [*scans, notes]}
    results = cli_batch(
        [
            ["predict", "--csv", *scans],  # --csv took scan1.jpeg as its value
            ["predict", scans[1], "--csv", notes],
            ["predict", scans[0], scans[1], "--csv", earlier],
            ["predict", scans[0], "--csv", earlier],  # a CSV it wrote may be replaced
        ]
    )
    swallowed, stranger, first, again = results
    assert swallowed.returncode == 1 and swallowed.stdout == ""
    assert "scan1.jpeg names an image file" in swallowed.stderr
    assert stranger.returncode == 1 and "was not written by pneumocxr" in stranger.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert earlier.read_text().count("\n") == 2  # the header and scan1's row


def test_csv_named_like_an_input_without_an_image_suffix_is_refused(tmp_path):
    scan = tmp_path / "scan"  # scanners often write DICOM files without a suffix
    shutil.copy(shared_images("NORMAL", 1)[0], scan)
    before = scan.read_bytes()
    (result,) = cli_batch([["predict", scan, "--csv", scan]])
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: --csv {scan} is one of the inputs; it would be overwritten"
    )
    assert scan.read_bytes() == before


def test_preview_never_overwrites_an_xray(tmp_path):
    data = make_subset(tmp_path / "data", 20, 20)
    xray = tmp_path / "xray.png"
    shutil.copy(shared_images("PNEUMONIA", 1)[0], xray)
    before = xray.read_bytes()
    ours = tmp_path / "grid.png"
    results = cli_batch(
        [
            ["preview", "--data", data, "--out", xray, "--image-size", 32],
            ["preview", "--data", data, "--out", ours, "--image-size", 32],
            ["preview", "--data", data, "--out", ours, "--image-size", 32],
        ]
    )
    assert results[0].returncode == 1 and "was not written by pneumocxr" in results[0].stderr
    assert xray.read_bytes() == before
    assert [r.returncode for r in results[1:]] == [0, 0], results[2].stderr
