"""Arguments of the wrong type or value get one PneumoError line from the Python API, never an
empty answer or a raw TypeError (issue 22): batch sizes, models, flags, training options."""

from __future__ import annotations

import pytest

import pneumocxr
from conftest import shared_images
from pneumocxr.errors import PneumoError
from pneumocxr.training.config import TrainConfig


@pytest.fixture(scope="module")
def model():
    return pneumocxr.load_model("default")


@pytest.fixture(scope="module")
def xrays():
    return shared_images("NORMAL", 1, 5) + shared_images("PNEUMONIA", 1, 5)


@pytest.mark.parametrize(
    "size, words",
    [
        (-1, "batch_size must be at least 1, got -1"),
        (0, "batch_size must be at least 1, got 0"),
        (1.5, "batch_size must be a whole number, got float 1.5"),
        (True, "batch_size must be a whole number, got bool True"),
        ("8", "batch_size must be a whole number, got str '8'"),
    ],
)
def test_a_bad_batch_size_is_refused_everywhere(model, xrays, size, words):
    for call in (
        lambda: model.predict(xrays, batch_size=size),
        lambda: model.predict([], batch_size=size),  # not an empty answer either
        lambda: model.predict_paths(xrays, batch_size=size),
    ):
        with pytest.raises(PneumoError, match=f"^{words}$"):
            call()


def test_a_good_batch_size_answers_every_image(model, xrays):
    assert len(model.predict(xrays * 3, batch_size=4)) == 6


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m, x: m.predict(x, threshold=[0.5]), "threshold must be a number or 'model'"),
        (lambda m, x: m.predict(x, scope_check="off"), "scope_check must be True or False"),
        (lambda m, x: m.predict_paths(123), "takes a path or a list of paths"),
        (lambda m, x: pneumocxr.load_model(123), 'a model is "default", a folder or a model.json'),
        (lambda m, x: pneumocxr.evaluate(m, 5), "data must be a folder's path, not a int"),
        (lambda m, x: pneumocxr.evaluate(m, "d", overwrite="yes"), "overwrite must be True or"),
    ],
    ids=["threshold", "scope_check", "predict_paths", "load_model", "evaluate", "overwrite"],
)
def test_arguments_of_the_wrong_type_are_one_line(model, xrays, call, words):
    with pytest.raises(PneumoError, match=words):
        call(model, xrays[0])


def test_one_path_is_one_file_not_its_letters(model, xrays):
    found, failures = model.predict_paths(str(xrays[0]))
    assert len(found) == 1 and failures == []


@pytest.mark.parametrize(
    "options, words",
    [
        ({"epochs": "x"}, "training option epochs must be a whole number or None, got str 'x'"),
        ({"batch_size": 2.5}, "training option batch_size must be a whole number"),
        ({"lr": "fast"}, "training option lr must be a number or None"),
        ({"quick": "yes"}, "training option quick must be True or False"),
        ({"model": 3}, "training option model must be text, got int 3"),
    ],
)
def test_training_options_are_checked_before_any_work(tmp_path, options, words):
    with pytest.raises(PneumoError, match=words):
        pneumocxr.train(tmp_path / "no-data", out=tmp_path / "runs", **options)
    assert not (tmp_path / "runs").exists()


def test_training_options_take_what_the_command_line_and_old_runs_give(tmp_path):
    config = TrainConfig(unfreeze=2, devices=1, out=tmp_path, augment=True).typed()
    assert (config.unfreeze, config.devices, config.out) == ("2", "1", str(tmp_path))
    assert config.augment == "tutorial"  # older config.json files stored true/false


def test_dicomweb_scoring_checks_its_batch_size_before_any_request(model):
    from pneumocxr.dicom.web import score_studies

    with pytest.raises(PneumoError, match="^batch_size must be at least 1, got 0$"):
        score_studies(model, "http://127.0.0.1:9", studies=["1.2.3"], batch_size=0)
