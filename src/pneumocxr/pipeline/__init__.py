"""Workflows behind the CLI, the API and notebooks: the tutorial run (`tutorial.py`), assessing
models (`assess.py`) and re-saving them (`export.py`). They wire the layers below together and
hold no ML logic of their own.

Imports of torch, Lightning and friends happen inside the functions that need them, so that
light commands (agreement, report, --help) start in a fraction of a second.
"""
