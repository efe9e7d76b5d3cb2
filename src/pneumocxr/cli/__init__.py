"""The `pneumocxr` command line: thin wrappers over the library, one subcommand per task,
grouped by topic in this package's modules (data, training, using a model, the web app)."""

from pneumocxr.cli import data, pacs, training, using, web  # noqa: F401 (they register commands)
from pneumocxr.cli._app import app, main

__all__ = ["app", "main"]
