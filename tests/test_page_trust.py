"""The page in a real browser: a photo and a gray square get an OUT_OF_SCOPE card (the reason,
no label, no heat map), an X-ray in the referral band "uncertain: refer", a clear X-ray its
label, each with the calibrated probability the API gave."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from conftest import EXTERNAL, launch_chromium
from live_server import post


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """(photo, gray square, an X-ray the shipped model refers, an X-ray it answers)."""
    from sklearn.datasets import load_sample_images

    import pneumocxr

    folder = tmp_path_factory.mktemp("uploads")
    photo, gray = folder / "holiday.jpeg", folder / "gray.png"
    Image.fromarray(load_sample_images().images[0]).save(photo)
    Image.new("L", (300, 300), 128).save(gray)
    model = pneumocxr.load_model("default")
    found = model.predict(sorted(EXTERNAL.rglob("*.jpeg"))[:160])
    referred = next(f.path for f in found if f.label == "UNCERTAIN")
    answered = next(f.path for f in found if f.label in ("NORMAL", "PNEUMONIA"))
    return photo, gray, referred, answered


def test_out_of_scope_and_uncertain_cards(server, client, uploads, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    expected = [
        post(client, Path(path).read_bytes(), name=Path(path).name).json() for path in uploads
    ]
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.base + "/")
            page.wait_for_selector("#model-name strong")
            trust = page.text_content("#trust")
            band_text = page.text_content("#model-name")
            cards = []
            for path in uploads:  # one at a time: the newest card comes first
                page.set_input_files("#files", str(path))
                page.locator(".result").first.locator(".label").wait_for(timeout=60_000)
                card = page.locator(".result").first
                cards.append({
                    "class": card.get_attribute("class"),
                    "label": card.locator(".label").text_content(),
                    "reason": card.locator(".reason").all_text_contents(),
                    "p": card.locator(".p").all_text_contents(),
                    "images": card.locator("img").count(),
                })  # fmt: skip
            page.screenshot(path=str(tmp_path / "trust.png"), full_page=True)
        finally:
            browser.close()
    photo, gray, referred, answered = cards
    for card, body in ((photo, expected[0]), (gray, expected[1])):
        assert body["label"] == "OUT_OF_SCOPE" and "outside" in card["class"]
        assert card["label"] == "not a chest X-ray the model knows"
        assert card["reason"] == [body["reason"]] and card["images"] == 0 and card["p"] == []
    assert expected[2]["label"] == "UNCERTAIN" and "uncertain" in referred["class"]
    assert referred["label"] == "uncertain: refer"
    assert float(referred["p"][0]) == pytest.approx(expected[2]["p_pneumonia"], abs=1e-3)
    assert answered["label"] == expected[3]["label"] and answered["images"] == 2
    assert float(answered["p"][0]) == pytest.approx(expected[3]["p_pneumonia"], abs=1e-3)
    assert "calibrated" in trust and "OUT_OF_SCOPE" in trust
    assert "uncertain: refer for" in band_text
