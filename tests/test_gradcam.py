"""Grad-CAM: the right layer for each architecture, real heatmaps, the figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli, cli_batch, shared_images
from pneumocxr.artifact.load import load_model
from pneumocxr.artifact.save import save_model
from pneumocxr.explain.gradcam import explain_images, overlay
from pneumocxr.networks.registry import MODELS, build_model


@pytest.mark.parametrize("name", list(MODELS))
def test_heatmaps_for_every_architecture(name, tmp_path):
    model = build_model(name, 64, weights="none")
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    paths = shared_images("PNEUMONIA", 2) + shared_images("NORMAL", 1)
    explanations = explain_images(loaded, paths)
    assert len(explanations) == 3
    for e in explanations:
        assert e.heatmap.shape == (64, 64) and e.image.shape == (64, 64)
        assert e.heatmap.min() >= 0.0 and e.heatmap.max() <= 1.0
        assert e.predicted in ("NORMAL", "PNEUMONIA")
    assert [e.true_label for e in explanations] == ["PNEUMONIA", "PNEUMONIA", "NORMAL"]


def test_trained_model_heatmap_is_not_constant(effnet_run):
    paths = shared_images("PNEUMONIA", 2, 50)
    for e in explain_images(load_model(effnet_run), paths):
        # at 64 px the last feature map is 2x2, so the upsampled map is smooth but not flat
        assert e.heatmap.max() == pytest.approx(1.0)
        assert e.heatmap.max() - e.heatmap.min() > 0.1 and e.heatmap.std() > 0.01


def test_overlay_blends_half_and_half():
    image = np.full((4, 4), 255, np.uint8)
    blended = overlay(image, np.zeros((4, 4)))
    assert np.allclose(blended[0, 0], 0.5 * 1.0 + 0.5 * np.array([0, 0, 0.5]), atol=0.01)


def test_gradcam_command_writes_images_and_a_panel(effnet_run, tmp_path):
    paths = shared_images("PNEUMONIA", 2, 60) + shared_images("NORMAL", 2, 60)
    result = cli("gradcam", effnet_run, *paths, "--out", tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(written) == 5 and "panel.png" in written
    assert result.stdout.count("wrote") == 5
    panel = Image.open(tmp_path / "panel.png")
    single = Image.open(tmp_path / f"{paths[0].stem}_gradcam.png")
    assert panel.width > 2.5 * single.width  # three side by side, not four
    colours = np.asarray(single.convert("RGB"))
    assert colours.std(axis=2).mean() > 10  # coloured heatmap, not a gray image


def test_images_with_the_same_name_get_their_own_heatmap(smallnet_run, tmp_path):
    source = shared_images("NORMAL", 1, 70)[0]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpeg").symlink_to(source)
    out = tmp_path / "out"
    cli("gradcam", smallnet_run, tmp_path / "a" / "x.jpeg", tmp_path / "b" / "x.jpeg", "--out", out)
    assert sorted(p.name for p in out.glob("x*.png")) == ["x_2_gradcam.png", "x_gradcam.png"]


def test_an_unreadable_image_is_skipped_and_names_are_printed_escaped(tmp_path):
    save_model(build_model("smallnet", 64, weights="none"), tmp_path / "model")
    source = shared_images("NORMAL", 1, 71)[0]
    odd = ["tab\there.jpeg", "cr\rname.jpeg"]
    for name in odd:
        (tmp_path / name).symlink_to(source)
    (tmp_path / "broken.jpeg").write_bytes(b"not an image")
    paths = [tmp_path / "broken.jpeg", *(tmp_path / name for name in odd)]
    done, failed = cli_batch(
        [
            ["gradcam", tmp_path / "model", *paths, "--out", tmp_path / "out"],
            ["gradcam", tmp_path / "model", tmp_path / "broken.jpeg", "--out", tmp_path / "none"],
        ]
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"warning: skipped {tmp_path}/broken.jpeg: not a readable image (unknown format or damaged)"
    ]
    assert done.stdout.splitlines() == [
        f"wrote {tmp_path}/out/tab\\there_gradcam.png",
        f"wrote {tmp_path}/out/cr\\rname_gradcam.png",
        f"wrote {tmp_path}/out/panel.png",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["tab\there_gradcam.png", "cr\rname_gradcam.png", "panel.png"]
    )
    assert failed.returncode == 1 and failed.stderr.endswith("error: no image could be read\n")
    assert not (tmp_path / "none").exists()  # no empty folder left behind


def test_gradcam_from_several_threads_at_once(tmp_path):
    """captum's hooks catch every pass through the hooked layer, another thread's too: 4
    threads' Grad-CAMs (and predictions through the same network) failed or mixed their maps
    until each network got a lock (issue 22)."""
    import threading

    import pneumocxr

    torch.manual_seed(0)
    save_model(build_model("smallnet", 64, weights="none"), tmp_path)
    model = pneumocxr.load_model(tmp_path)
    images = shared_images("NORMAL", 4, 60) + shared_images("PNEUMONIA", 4, 60)
    heat, probs = model.gradcam(images), [a.p_pneumonia for a in model.predict(images)]
    for mixed in (False, True):  # four Grad-CAMs; two Grad-CAMs and two predictions
        for _ in range(8):
            start, found = threading.Barrier(4), {}

            def run(i, mixed=mixed, start=start, found=found):
                start.wait()
                try:
                    found[i] = (
                        [a.p_pneumonia for a in model.predict(images)]
                        if mixed and i % 2
                        else model.gradcam(images)
                    )
                except Exception as err:  # noqa: BLE001 (what went wrong is the finding)
                    found[i] = err

            threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            for i, got in found.items():
                want = probs if mixed and i % 2 else heat
                assert not isinstance(got, Exception), got
                assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(got, want))
