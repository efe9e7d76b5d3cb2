"""pneumocxr: train, evaluate, explain and serve chest X-ray classifiers (NORMAL vs PNEUMONIA).

The Python API (docs/API.md): `pneumocxr.load_model`, `Model.predict`, `Model.gradcam`,
`pneumocxr.train`, `pneumocxr.evaluate`. They load torch on first use, so `import pneumocxr`
and the command line's `--help` stay fast.

This module is the facade above every layer (docs/ARCHITECTURE.md): nothing in the package
imports it; the constants come from `pneumocxr.task`, the API from `pneumocxr.api`.
"""

from pneumocxr.task import CLASS_NAMES, __version__

__all__ = ["CLASS_NAMES", "Model", "Prediction", "__version__", "evaluate", "load_model", "train"]


def __getattr__(name: str):
    if name in ("Model", "Prediction", "evaluate", "load_model", "train"):
        from pneumocxr import api

        return getattr(api, name)
    raise AttributeError(f"module 'pneumocxr' has no attribute {name!r}")
