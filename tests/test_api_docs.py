"""docs/API.md's examples, run as doctests from the project root (its paths are relative to it:
../shared/data/chest_xray)."""

from __future__ import annotations

import doctest
import tempfile

from conftest import ROOT


def test_the_api_guide_runs_as_written(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what the guide makes stays here
    failed, attempted = doctest.testfile(
        str(ROOT / "docs" / "API.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    report = capsys.readouterr().out
    assert attempted > 50
    assert failed == 0, report
