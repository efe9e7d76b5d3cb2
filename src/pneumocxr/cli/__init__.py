"""The `pneumocxr` command line: thin wrappers over the library, one subcommand per task,
grouped by topic in this package's modules (data, training, predicting, using a model, the web
app, the PACS node); `--help` lists them in that order."""

# isort: off
from pneumocxr.cli import data, training, predicting, using, web, pacs  # noqa: F401 (they register)
from pneumocxr.cli._app import app, main

# isort: on

__all__ = ["app", "main"]
