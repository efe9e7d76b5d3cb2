"""The task's constants: what every layer may import, and which imports nothing of pneumocxr.

Belongs here: the class names and answer labels, the package version, limits that the model
files and the decoders share, and the normalisation constants of the pretrained backbones.
Does not belong here: anything that computes (functions, classes with behaviour).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pneumocxr")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

# The network's two classes, in the order of its one logit (0: NORMAL, 1: PNEUMONIA).
CLASS_NAMES = ("NORMAL", "PNEUMONIA")
# What an answer may say: a class, or no class (refer to a person; not an image it knows).
UNCERTAIN, OUT_OF_SCOPE = "UNCERTAIN", "OUT_OF_SCOPE"
LABELS = (*CLASS_NAMES, UNCERTAIN, OUT_OF_SCOPE)
# An answer is confident at a calibrated P of at least this (PNEUMONIA) or at most 1 - it.
CONFIDENT = 0.9

MAX_INPUT_SIZE = 2048  # a model's input, pixels a side; larger would take minutes and gigabytes

# (mean, std) per channel on [0, 1] pixels.
NO_NORMALISATION = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
IMAGENET_NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
