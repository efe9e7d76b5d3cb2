"""Finding the data, and fetching the Kaggle copy with kagglehub when there is none."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.folders import ensure_dir

log = logging.getLogger("pneumocxr")
HANDLE = "paultimothymooney/chest-xray-pneumonia"
DEFAULT_DEST = Path("data")
ENV_VAR = "PNEUMOCXR_DATA"


def resolve_data(data=None) -> Path:
    """--data, then $PNEUMOCXR_DATA, then ./data/chest_xray, else download to ./data."""
    if data:
        return Path(data)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    local = DEFAULT_DEST / "chest_xray"
    if local.is_dir():
        return local
    log.info("no --data, $%s or %s: downloading the Kaggle dataset", ENV_VAR, local)
    return download(DEFAULT_DEST)


def download(dest=DEFAULT_DEST) -> Path:
    """Download the Kaggle dataset into `dest` and clean it; returns dest/chest_xray."""
    dest = ensure_dir(dest)
    final = dest / "chest_xray"
    if (final / "train").is_dir():
        log.info("%s already holds the dataset; nothing to download", final)
        return final
    staging = dest / ".download"
    try:
        import kagglehub

        raw = Path(kagglehub.dataset_download(HANDLE, output_dir=str(staging)))
    except Exception as err:  # offline, no credentials, Kaggle errors: all end the same way
        reason = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise PneumoError(
            f"cannot download {HANDLE} from Kaggle ({reason}). If you have a copy, point to it "
            f"with --data DIR or ${ENV_VAR} (a folder with NORMAL/ and PNEUMONIA/ inside)"
        ) from None
    clean_download(raw, final)
    shutil.rmtree(staging, ignore_errors=True)
    log.info("dataset ready in %s", final)
    return final


def clean_download(raw, final) -> Path:
    """Tidy the Kaggle archive as the tutorial does: drop __MACOSX and the nested duplicate."""
    raw, final = Path(raw), Path(final)
    for junk in sorted(raw.rglob("__MACOSX"), reverse=True):
        shutil.rmtree(junk, ignore_errors=True)
    top = raw / "chest_xray" if (raw / "chest_xray").is_dir() else raw
    nested = top / "chest_xray"
    if nested.is_dir():
        shutil.rmtree(nested)
    if not any(top.iterdir()):
        raise PneumoError(f"the download in {raw} holds no data")
    if top.resolve() != final.resolve():
        if final.exists():
            raise PneumoError(f"{final} exists already; remove it or choose another --dest")
        shutil.move(str(top), str(final))
    return final
