"""A short, fixed-time run (8 s) of benchmarks/fuzz.py (the long one is documented in
docs/RELIABILITY.md): every fuzzed image or DICOM is decoded or refused with a PneumoError."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pneumocxr.errors import PneumoError

FUZZ = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"


def test_a_short_fuzz_run_finds_no_crash(tmp_path):
    summary = tmp_path / "fuzz.json"
    command = [sys.executable, FUZZ, "--seconds", "8", "--examples", "30", "--json", summary,
               "--crashes", tmp_path / "crashes"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    found = json.loads(summary.read_text())
    assert found["crashes"] == {}, found["crashes"]
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert found["executions"] >= 90 and min(found["by_target"].values()) > 0


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz", FUZZ)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fuzzer_records_what_breaks_the_contract(fuzz, tmp_path, monkeypatch):
    fuzzer = fuzz.Fuzzer(tmp_path, tmp_path / "crashes", hang=5)
    calls = iter([PneumoError("refused"), ValueError("a bug"), None])

    def fake_load(path, size):
        outcome = next(calls)
        if outcome is not None:
            raise outcome
        import warnings

        warnings.warn("a raw warning", UserWarning, stacklevel=1)
        return np.zeros((64, 64), dtype=np.uint8)

    monkeypatch.setattr(fuzz, "load_image", fake_load)
    for _ in range(3):
        fuzzer.check("mutated", b"data", ".png")
    assert fuzzer.refused == 1
    kinds = sorted(key.split(" ")[0] for key in fuzzer.found)
    assert kinds == ["RawWarning", "ValueError"]
    assert len(list((tmp_path / "crashes").iterdir())) == 2
