"""A command never writes over a file it was given as input or that it did not make."""

from __future__ import annotations

import shutil

from conftest import cli_batch, make_subset, shared_images
from corpus import good_model
from dicom_factory import jpeg_pixels, make_dicom, twelve_bit
from in_process import run_cli
from pneumocxr.fileio.formats import read_csv


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


# -- the third hostile round: only a file that carries pneumocxr's mark is pneumocxr's --------
def _unchanged(*paths):
    return {p: p.read_bytes() for p in paths}


def _matplotlib_png(path):
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1, 1))
    figure.savefig(path)  # Matplotlib's own mark (Software: Matplotlib ...), not pneumocxr's
    plt.close(figure)
    return path


def test_predict_csv_never_replaces_a_labels_csv(tmp_path):
    scan = tmp_path / "scan.jpeg"
    shutil.copy(shared_images("NORMAL", 1)[0], scan)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nscan.jpeg,NORMAL\n")  # the documented labels format
    kept = _unchanged(labels, scan)
    refused = run_cli("predict", scan, "--csv", labels)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "exists and was not written by pneumocxr" in refused.stderr
    assert _unchanged(labels, scan) == kept
    plain = tmp_path / "scan"  # scanners often write files without a suffix
    shutil.copy(scan, plain)
    never = run_cli("predict", plain, "--csv", plain, "--overwrite")
    assert never.returncode == 1 and "is one of the inputs" in never.stderr
    assert plain.read_bytes() == kept[scan]
    asked = run_cli("predict", scan, "--csv", labels, "--overwrite")
    assert asked.returncode == 0, asked.stderr
    assert labels.read_bytes().startswith(b"path,label,p_pneumonia,in_scope,scope_score,reason\r\n")
    again = run_cli("predict", scan, "--csv", labels)  # now it is predict's own: replaced
    assert again.returncode == 0, again.stderr


def test_split_keeps_a_users_files_and_stays_out_of_the_data(tmp_path):
    data = make_subset(tmp_path / "data", 10, 10)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "splits.csv").write_text("path,label,split\nx.jpeg,NORMAL,train\n")
    _matplotlib_png(out / "distribution.png")
    kept = _unchanged(out / "splits.csv", out / "distribution.png")
    for where in (out, data / "NORMAL" / "splits"):
        refused = run_cli("split", "--data", data, "--out", where)
        assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "inside the data folder" in refused.stderr and not (data / "NORMAL" / "splits").exists()
    assert _unchanged(out / "splits.csv", out / "distribution.png") == kept
    fresh = tmp_path / "fresh"
    results = [run_cli("split", "--data", data, "--out", fresh) for _ in range(2)]
    results.append(run_cli("split", "--data", data, "--out", out, "--overwrite"))
    assert [r.returncode for r in results] == [0, 0, 0], results[-1].stderr
    assert (out / "splits.csv").read_text().startswith("path,label,patient,subtype,source,split")


def test_gradcam_never_writes_over_its_inputs_or_a_users_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    panel, scan = out / "panel.png", tmp_path / "scan.jpeg"  # an X-ray that is named panel.png
    shutil.copy(shared_images("PNEUMONIA", 1)[0], panel)
    shutil.copy(shared_images("NORMAL", 1)[0], scan)
    mine = _matplotlib_png(out / "scan_gradcam.png")
    kept = _unchanged(panel, scan, mine)
    as_input = run_cli("gradcam", "default", panel, "--out", out, "--overwrite")
    assert as_input.returncode == 1 and "is one of the inputs" in as_input.stderr
    foreign = run_cli("gradcam", "default", scan, "--out", out)
    assert foreign.returncode == 1 and "was not written by pneumocxr" in foreign.stderr
    assert _unchanged(panel, scan, mine) == kept and sorted(out.iterdir()) == [panel, mine]
    asked = run_cli("gradcam", "default", scan, "--out", tmp_path / "new")
    assert asked.returncode == 0, asked.stderr


def test_preview_counts_only_its_own_mark_not_matplotlibs(tmp_path):
    data = make_subset(tmp_path / "data", 20, 20)
    figure = _matplotlib_png(tmp_path / "figure.png")
    kept = _unchanged(figure)
    foreign = run_cli("preview", "--data", data, "--out", figure, "--image-size", 32)
    inside = run_cli("preview", "--data", data, "--out", data / "NORMAL" / "grid.png")
    assert foreign.returncode == 1 and "was not written by pneumocxr" in foreign.stderr
    assert inside.returncode == 1 and "inside the data folder" in inside.stderr
    assert _unchanged(figure) == kept and not (data / "NORMAL" / "grid.png").exists()


def test_no_command_writes_into_the_data_folder_it_reads(tmp_path):
    data = make_subset(tmp_path / "data", 4, 4)
    model = good_model(tmp_path / "model")
    inside = data / "NORMAL" / "out"
    commands = [
        ["evaluate", model, "--data", data, "--out", inside],
        ["compare", model, "--data", data, "--out", inside],
        ["compare", model, "--data", tmp_path, "--external", data, "--out", inside],
        ["stress", model, "--data", data, "--out", inside],
        ["train", "--data", data, "--out", inside, "--model", "smallnet"],
        ["run", "--data", data, "--out", inside, "--quick"],
    ]
    for command in commands:
        result = run_cli(*command)
        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.startswith(f"error: --out {inside} is inside the data folder")
    assert not inside.exists()


def test_a_folder_output_never_replaces_an_input_even_with_overwrite(tmp_path):
    model, other = good_model(tmp_path / "model"), good_model(tmp_path / "other")
    kept = _unchanged(*model.iterdir())
    for command in (["export", model, "--out", model, "--overwrite"],
                    ["ensemble", model, other, "--out", model, "--overwrite"]):  # fmt: skip
        result = run_cli(*command)
        assert result.returncode == 1 and "an input of" in result.stderr, result.stderr
    assert _unchanged(*model.iterdir()) == kept


def test_report_and_dicom2png_keep_what_they_did_not_write(tmp_path):
    page = tmp_path / "report.html"
    page.write_text("<html><title>my own notes</title></html>")
    refused = run_cli("report", tmp_path)
    assert refused.returncode == 1 and "was not written by pneumocxr" in refused.stderr
    scan = tmp_path / "scan.png"  # a DICOM with a PNG's name
    make_dicom(scan, twelve_bit(jpeg_pixels(shared_images("NORMAL", 1)[0])))
    kept = _unchanged(page, scan)
    same = run_cli("dicom2png", scan, scan, "--overwrite")
    assert same.returncode == 1 and "is the DICOM file to convert" in same.stderr
    assert _unchanged(page, scan) == kept


def test_a_figure_pneumocxr_drew_is_never_read_as_an_xray(tmp_path):
    import matplotlib.pyplot as plt

    from pneumocxr.fileio.formats import save_figure

    data = make_subset(tmp_path / "data", 10, 10)
    left = data / "NORMAL" / "eval" / "roc.png"  # an evaluation an earlier version wrote there
    left.parent.mkdir()
    save_figure(plt.figure(figsize=(2, 2)), left)
    result = run_cli("split", "--data", data, "--out", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert f"{left}: a figure drawn by pneumocxr, not an X-ray" in result.stderr
    assert len(read_csv(tmp_path / "s" / "splits.csv")) == 20
