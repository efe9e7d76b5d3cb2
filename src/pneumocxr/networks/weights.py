"""Reading pretrained weight files safely: safetensors, or PyTorch files with
`weights_only=True`; the packaged ones checked against their pinned hash, downloads with the
hash in their name."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from pneumocxr.errors import PneumoError, first_line
from pneumocxr.fileio.formats import sha256_file

_TRUSTED_PICKLES: set[Path] = set()


def trust_pickle(path) -> None:
    """Allow reading this pickle-based file (the user passed --trust-pickle for it)."""
    _TRUSTED_PICKLES.add(Path(path).resolve())


def read_state_dict(path, trusted: bool = False) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or from a PyTorch (pickle-based) state dict when it is
    trusted: a packaged file checked against its pinned hash, or one named with --trust-pickle.
    Even then it is read with `weights_only=True`, which refuses pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise PneumoError(f"weights file not found: {path}")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            return load_file(str(path))
        if path.suffix == ".safetensors":
            raise ValueError("not a safetensors file")
        if not (trusted or path.resolve() in _TRUSTED_PICKLES):
            raise PneumoError(
                f"{path} is a pickle-based PyTorch file, which can carry code: pass "
                "--trust-pickle if you trust where it came from (it is still read with "
                "weights_only=True), or convert it to .safetensors"
            )
        with warnings.catch_warnings():  # torch's note about the pickle protocol is noise
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except PneumoError:
        raise
    except pickle.UnpicklingError as err:  # torch's text would suggest weights_only=False
        raise PneumoError(_holds_objects(path, err)) from None
    except Exception as err:  # corrupt file, pickled objects, wrong format
        raise PneumoError(f"cannot read weights from {path}: {first_line(err)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise PneumoError(f"{path} does not hold a state dict of tensors")
    return state


def _holds_objects(path: Path, err: Exception) -> str:
    """Our own line for a pickle that holds more than tensors: it is never unpickled."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    what = f" (such as {found.group(1)})" if found else ""
    return (
        f"{path} holds Python objects besides tensors{what}, which pneumocxr never loads, "
        "even with --trust-pickle; save a plain state dict of tensors, or .safetensors"
    )


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length and a JSON object."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_packaged(path, expected_sha256: str) -> dict[str, torch.Tensor]:
    """A state dict shipped inside an installed package, after checking its pinned hash."""
    found = sha256_file(path)
    if found != expected_sha256:
        raise PneumoError(
            f"{path} has SHA-256 {found[:12]}..., not the pinned {expected_sha256[:12]}...; "
            "reinstall its package"
        )
    return read_state_dict(path, trusted=True)


def download_state_dict(url: str, flag_hint: str) -> dict[str, torch.Tensor]:
    """Fetch a state dict into torch's hub cache (once), checking the hash in its file name."""
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except (URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise PneumoError(
            f"cannot download weights from {url} ({reason}); download that file elsewhere "
            f"and pass it with {flag_hint} --trust-pickle, or use --weights none to train from "
            "scratch"
        ) from None
    except RuntimeError as err:  # hash mismatch or a corrupt download
        raise PneumoError(f"downloaded weights from {url} are damaged: {err}") from None


def load_into(
    module: nn.Module, state: dict[str, torch.Tensor], what: str, prefix: str = ""
) -> None:
    """Copy every tensor of `module` from `state` (keys `prefix` + own key), failing clearly
    on a missing or odd tensor."""
    own = module.state_dict()
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing = [k for k in own if k not in state]
    if missing:
        raise PneumoError(f"{what} lacks {len(missing)} tensors, e.g. {prefix}{missing[0]}")
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise PneumoError(
                f"{what} does not fit: {prefix}{key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
    module.load_state_dict({k: state[k].to(own[k].dtype) for k in own})
