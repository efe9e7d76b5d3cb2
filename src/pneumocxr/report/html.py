"""report.html: every figure and table of a `pneumocxr run`, in the tutorial's order.

The report is rebuilt from the files in the run folder alone (no model is loaded), and is one
self-contained file: images are embedded as data URIs, so it can be mailed or archived.

Everything it shows comes from files anyone may have named or edited (a data folder called
`<img src=x onerror=...>`, a model.json from a stranger), and the report is shared: every value
is HTML-escaped, numbers are shown only when they are numbers, and a Content-Security-Policy
forbids scripts and anything fetched from outside the file.
"""

from __future__ import annotations

import base64
import datetime as dt
from numbers import Real
from pathlib import Path

from jinja2 import Environment, PackageLoader

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


# The report holds no script and loads nothing: images are data: URIs, styles are inline.
POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)


def number(value, digits: int = 3) -> str:
    """A metric for display; undefined ones (null in metrics.json, missing, or not a number
    in an edited file) show as n/a."""
    if not _is_number(value) or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def count(value) -> str:
    """A whole number with thousands separators; anything else as n/a."""
    return f"{int(value):,}" if _is_number(value) and float(value).is_integer() else "n/a"


def percent(part, whole) -> str:
    if not (_is_number(part) and _is_number(whole)) or not whole:
        return "n/a"
    return f"{100 * part / whole:.1f}"


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None


def _json(path: Path, kind=dict):
    """The file's JSON when it is a `kind` (an edited file may hold anything else)."""
    found = read_json(path) if path.is_file() else None
    return found if isinstance(found, kind) else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def model_section(sub: Path) -> dict:
    config, meta = _json(sub / "config.json") or {}, _json(sub / "model.json") or {}
    section = {
        "name": sub.name,
        "architecture": meta.get("architecture", sub.name),
        "config": config,
        "meta": meta,
    }
    for key, rel in SECTIONS.items():
        path = sub / rel
        section[key] = data_uri(path) if rel.endswith(".png") else _read(path)
    return section


def model_folders(run_dir: Path) -> list[Path]:
    """The models of a `pneumocxr run` folder (one sub-folder each), or a `pneumocxr train`
    run, which is its own one model."""
    if (run_dir / "model.json").is_file():
        return [run_dir]
    subs = sorted(p.parent for p in run_dir.glob("*/model.json"))
    if not subs:
        raise PneumoError(
            f"{run_dir} is not a folder made by `pneumocxr run` or `pneumocxr train` "
            "(no model.json in it or in its sub-folders)"
        )
    return subs


def environment() -> Environment:
    # autoescape=True, not select_autoescape(): the template's .j2 suffix is not one it knows,
    # so it turned escaping off.
    env = Environment(loader=PackageLoader("pneumocxr", "report/templates"), autoescape=True)
    env.filters.update(num=number, count=count, percent=percent)
    return env


def build_report(run_dir) -> str:
    run_dir = Path(run_dir)
    subs = model_folders(run_dir)
    models = sorted((model_section(s) for s in subs), key=lambda m: m["architecture"] != "smallnet")
    env = environment()
    comparison = _json(run_dir / "comparison" / "comparison.json", list)
    comparison = [c for c in comparison or [] if isinstance(c, dict)]
    by_name = {str(c.get("name")): c for c in comparison}
    for m in models:
        m["test"] = by_name.get(m["name"], {})
    return env.get_template("report.html.j2").render(
        run=run_dir.name,
        policy=POLICY,
        created=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        images=_dict(models[0]["config"].get("images")),
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
