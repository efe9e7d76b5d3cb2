"""Shift tempering (decision/shift.py): P made less sure as the scope score grows, fitted by
`export --temper-on` on altered images, so that an altered X-ray is not answered confidently
wrong."""

import json
import shutil

import numpy as np
import pytest

from conftest import EXTERNAL, cli, make_subset
from pneumocxr.decision.band import Band
from pneumocxr.decision.calibration import logit
from pneumocxr.decision.shift import GRID, Scores, ShiftTempering, fit_tempering

THRESHOLD = 0.4
BAND = Band(0.2, 0.5)


def test_tempering_pulls_p_towards_the_threshold_and_never_across_it():
    rng = np.random.default_rng(0)
    probs, scopes = rng.uniform(0.001, 0.999, 500), rng.uniform(-1, 1.5, 500)
    tempered = ShiftTempering(0.8).apply(probs, scopes, THRESHOLD)
    assert np.array_equal(tempered >= THRESHOLD, probs >= THRESHOLD)
    before, after = np.abs(logit(probs) - logit(THRESHOLD)), np.abs(logit(tempered) - logit(0.4))
    far, near = scopes > 0.05, scopes <= 0
    assert np.all(after[far] < before[far]) and np.allclose(after[near], before[near])
    assert np.array_equal(ShiftTempering(0.0).apply(probs, scopes, THRESHOLD), probs)
    assert np.array_equal(ShiftTempering(0.8).apply(probs, None, THRESHOLD), probs)


def _case(untouched_p, altered_p, altered_scope, truth):
    untouched = Scores(np.array(untouched_p), np.zeros(len(untouched_p)))
    altered = {"crop": Scores(np.array(altered_p), np.array(altered_scope))}
    return np.array(truth, dtype=bool), untouched, altered


def test_fit_takes_the_smallest_gamma_that_keeps_altered_answers_from_confident_mistakes():
    # a NORMAL image answered NORMAL (right), a PNEUMONIA image referred; altered, both go
    # confidently wrong at some distance from the training X-rays
    truth, untouched, altered = _case([0.05, 0.3], [0.95, 0.04], [0.6, 0.3], [False, True])
    fitted = fit_tempering(truth, untouched, altered, THRESHOLD, BAND, "held-out")
    assert fitted.met and fitted.gamma > 0 and fitted.alterations == ("crop",)
    assert (fitted.wrong_untempered, fitted.wrong_tempered) == (2, 0)
    for gamma in GRID:
        tempered = [ShiftTempering(gamma).apply(s.probs, s.scopes, THRESHOLD)
                    for s in altered.values()][0]  # fmt: skip
        fixed = tempered[0] < 0.9 and tempered[1] > 0.1
        assert fixed == (gamma >= fitted.gamma), gamma


def test_an_image_wrong_before_it_was_altered_does_not_move_gamma():
    # answered PNEUMONIA (wrongly) untouched, more sure of it altered: not the alteration's doing
    truth, untouched, altered = _case([0.8, 0.1], [0.97, 0.1], [0.5, 0.0], [False, False])
    assert fit_tempering(truth, untouched, altered, THRESHOLD, BAND).gamma == 0


def test_when_no_gamma_is_enough_the_record_says_so():
    # at the edge of the scope check (score 0.01) no gamma of the grid tempers P 0.999
    truth, untouched, altered = _case([0.1], [0.999], [0.01], [False])
    fitted = fit_tempering(truth, untouched, altered, THRESHOLD, BAND)
    assert not fitted.met and fitted.gamma == GRID[-1] and fitted.wrong_tempered == 1
    assert ShiftTempering.from_json(fitted.to_json()) == fitted


@pytest.mark.parametrize("record", [{"gamma": -1}, {"gamma": "0.5"}, {"gamma": True}, [0.5],
                                    {"gamma": 0.5, "n": "many"}])  # fmt: skip
def test_a_model_with_a_damaged_tempering_record_is_refused(tmp_path, record):
    from pneumocxr.artifact.resolve import DEFAULT_MODEL_DIR

    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["shift_tempering"] = record
    (folder / "model.json").write_text(json.dumps(meta))
    bad = cli("predict", sorted(EXTERNAL.glob("*/*.jpeg"))[0], "--model", folder, check=False)
    assert bad.returncode == 1 and "damaged" in bad.stderr and "Traceback" not in bad.stderr


def test_the_shipped_model_does_not_answer_a_referred_child_cropped_to_90_percent_wrongly():
    """The case that made tempering: a NORMAL child the shipped model refers (P 0.37) was
    PNEUMONIA at P 0.94 once cropped to its central 90%."""
    import pneumocxr
    from pneumocxr.data.alterations import central_crop
    from pneumocxr.data.decode import read_gray

    model = pneumocxr.load_model()
    assert model.meta["shift_tempering"]["gamma"] > 0
    path = sorted((EXTERNAL / "NORMAL").glob("*.jpeg"))[69]
    assert model.predict(path).label == "UNCERTAIN"
    cropped = model.predict(central_crop(np.asarray(read_gray(path)), 0.9))
    assert cropped.in_scope and not (cropped.label == "PNEUMONIA" and cropped.p_pneumonia >= 0.9)
    plain = model.predict(central_crop(np.asarray(read_gray(path)), 0.9), scope_check=False)
    assert plain.p_pneumonia > 0.9  # the calibrated P alone, untempered: what it was before


def test_export_temper_on_fits_gamma_and_answers_use_it(smallnet_run, tmp_path):
    import pneumocxr
    from pneumocxr.api import Model
    from pneumocxr.artifact.loaded import LoadedModel
    from pneumocxr.data.alterations import central_crop
    from pneumocxr.data.decode import read_gray

    bad = cli("export", smallnet_run, "--out", tmp_path / "x", "--temper-on", tmp_path / "gone",
              check=False)  # fmt: skip
    assert bad.returncode == 1 and "gone" in bad.stderr.splitlines()[-1]
    assert "Traceback" not in bad.stderr and not (tmp_path / "x").exists()
    (tmp_path / "labels.csv").write_text("path,label\n/x.jpeg,NORMAL\n")
    bad = cli("export", smallnet_run, "--out", tmp_path / "x", "--temper-on",
              tmp_path / "labels.csv", check=False)  # fmt: skip
    assert bad.returncode == 1 and "a labelled folder or a run's splits.csv" in bad.stderr
    held_out = make_subset(tmp_path / "held-out", 10, 10, start=400)  # not in its training
    out = tmp_path / "tempered"
    done = cli("export", smallnet_run, "--out", out, "--temper-on", held_out)
    assert "shift tempering: gamma" in done.stderr
    record = json.loads((out / "model.json").read_text())["shift_tempering"]
    assert record["fit_on"] == "held-out (20 images)" and record["n"] == 20
    assert len(record["alterations"]) == 6 and record["gamma"] in GRID
    # the record is part of what the weights were exported with: an edit is refused
    meta = json.loads((out / "model.json").read_text())
    meta["shift_tempering"]["gamma"] = 2.0
    (out / "model.json").write_text(json.dumps(meta))
    edited = cli("predict", sorted(EXTERNAL.glob("*/*.jpeg"))[0], "--model", out, check=False)
    assert edited.returncode == 1 and "shift_tempering.gamma 2.0" in edited.stderr
    # answers use the record, whatever gamma: the same model with gamma 2, in memory
    plain = pneumocxr.load_model(smallnet_run)
    loaded = plain.loaded
    tempered = Model(LoadedModel(loaded.predictor, meta, loaded.path))
    images = [central_crop(np.asarray(read_gray(p)), 0.8) for p in
              sorted(EXTERNAL.glob("*/*.jpeg"))[::40]]  # fmt: skip
    centre = logit(plain.threshold)
    for a, b in zip(plain.predict(images), tempered.predict(images)):
        assert a.logit == b.logit and a.predicted == b.predicted
        expected = abs(logit(a.p_pneumonia) - centre) / (1 + 2.0 * max(0, a.scope_score))
        assert abs(logit(b.p_pneumonia) - centre) == pytest.approx(expected, abs=1e-9)
