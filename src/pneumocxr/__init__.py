"""pneumocxr: train, evaluate, explain and serve chest X-ray classifiers (NORMAL vs PNEUMONIA)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pneumocxr")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

CLASS_NAMES = ("NORMAL", "PNEUMONIA")
