"""Where the data comes from: --data, $PNEUMOCXR_DATA, ./data/chest_xray, else Kaggle."""

from __future__ import annotations

from conftest import cli, make_subset
from pneumocxr.data.download import clean_download, resolve_data
from pneumocxr.data.index import index_images

OFFLINE = {
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "KAGGLE_USERNAME": "",
    "KAGGLE_KEY": "",
}


def test_cleaning_a_kaggle_archive(tmp_path):
    raw = tmp_path / "raw"
    make_subset(raw / "chest_xray" / "train", 2, 2)
    make_subset(raw / "chest_xray" / "test", 1, 1, start=5)
    make_subset(raw / "chest_xray" / "chest_xray" / "train", 2, 2)  # the nested duplicate
    make_subset(raw / "__MACOSX" / "chest_xray" / "train", 1, 1)
    make_subset(raw / "chest_xray" / "__MACOSX" / "x", 1, 1)
    final = clean_download(raw, tmp_path / "data" / "chest_xray")
    assert sorted(p.name for p in final.iterdir()) == ["test", "train"]
    assert not list(tmp_path.rglob("__MACOSX"))
    assert len(index_images(final)) == 6


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PNEUMOCXR_DATA", str(tmp_path / "env"))
    assert resolve_data(tmp_path / "given") == tmp_path / "given"
    assert resolve_data() == tmp_path / "env"
    monkeypatch.delenv("PNEUMOCXR_DATA")
    (tmp_path / "data" / "chest_xray").mkdir(parents=True)
    assert resolve_data().resolve() == (tmp_path / "data" / "chest_xray").resolve()


def test_offline_download_fails_clearly(tmp_path):
    result = cli("download", "--dest", tmp_path / "d", check=False, env=OFFLINE)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: cannot download paultimothymooney/chest-xray-pneumonia")
    assert "--data DIR" in error


def test_missing_data_triggers_the_download_then_explains(tmp_path):
    env = {**OFFLINE, "PNEUMOCXR_DATA": ""}
    result = cli("split", "--out", tmp_path / "o", check=False, env=env, cwd=tmp_path)
    assert result.returncode == 1 and "downloading the Kaggle dataset" in result.stderr
    assert "--data DIR" in result.stderr
