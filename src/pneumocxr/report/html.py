"""report.html: every figure and table of a `pneumocxr run`, in the tutorial's order.

The report is rebuilt from the files in the run folder alone (no model is loaded), and is one
self-contained file: images are embedded as data URIs, so it can be mailed or archived.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import read_json, write_text
from pneumocxr.fileio.outputs import check_output_file, html_report
from pneumocxr.task import __version__

SECTIONS = {  # file in a model's sub-run -> what it shows
    "history": "history.png",
    "summary": "summary.txt",
    "report": "evaluation/report.txt",
    "confusion": "evaluation/confusion_matrix.png",
    "calibration": "evaluation/calibration.png",
    "risk_coverage": "evaluation/risk_coverage.png",
    "gradcam": "gradcam/panel.png",
}


def number(value, digits: int = 3) -> str:
    """A metric for display; undefined ones (null in metrics.json) show as n/a."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _json(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def model_section(sub: Path) -> dict:
    config, meta = _json(sub / "config.json") or {}, _json(sub / "model.json") or {}
    section = {
        "name": sub.name,
        "config": config,
        "meta": meta,
    }
    for key, rel in SECTIONS.items():
        path = sub / rel
        section[key] = data_uri(path) if rel.endswith(".png") else _read(path)
    return section


def build_report(run_dir) -> str:
    run_dir = Path(run_dir)
    subs = sorted(p.parent for p in run_dir.glob("*/model.json"))
    if not subs:
        raise PneumoError(f"{run_dir} is not a folder made by `pneumocxr run` (no */model.json)")
    models = sorted((model_section(s) for s in subs), key=lambda m: m["name"] != "smallnet")
    env = Environment(
        loader=PackageLoader("pneumocxr", "report/templates"), autoescape=select_autoescape()
    )
    env.filters["num"] = number
    comparison = _json(run_dir / "comparison" / "comparison.json")
    by_name = {c.get("name"): c for c in comparison or []}
    for m in models:
        m["test"] = by_name.get(m["name"], {})
    return env.get_template("report.html.j2").render(
        run=run_dir.name,
        created=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        images=models[0]["config"].get("images", {}),
        data=models[0]["config"].get("data", ""),
        distribution=data_uri(run_dir / "distribution.png"),
        preview=data_uri(run_dir / "preview.png"),
        roc_comparison=data_uri(run_dir / "comparison" / "roc_comparison.png"),
        comparison=comparison,
        models=models,
    )


def write_report(run_dir, overwrite: bool = False) -> Path:
    path = Path(run_dir) / "report.html"
    check_output_file(path, "report", made_here=html_report, overwrite=overwrite)
    write_text(path, build_report(run_dir))
    return path
