"""Are two versions' answers the same, bit for bit? Each image's P, logit and scope score as
exact hexadecimal floats, and its label, for the external set, from whichever pneumocxr is
imported (a source tree of another commit through PYTHONPATH); then a comparison of two such
files, image by image and model by model.

    git archive 3148f07 src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src .venv/bin/python tools/identical.py record before.json default M...
    .venv/bin/python tools/identical.py record now.json default M...
    .venv/bin/python tools/identical.py compare before.json now.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXTERNAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "external"
SUFFIXES = {".jpeg", ".jpg", ".png"}


def record(out: Path, models: list[str]) -> None:
    import pneumocxr
    from pneumocxr.api import load_model

    images = sorted(str(p) for p in EXTERNAL.resolve().rglob("*") if p.suffix.lower() in SUFFIXES)
    answers = {}
    for name in models:
        found = load_model(name).predict_paths(images)
        flat = [a for item in found for a in (item if isinstance(item, list) else [item])]
        answers[name] = {a.path: [_hex(a.p_pneumonia), _hex(a.logit), _hex(a.scope_score), a.label]
                         for a in flat}  # fmt: skip
        print(f"{name}: {len(flat)} images")
    out.write_text(json.dumps({"pneumocxr": pneumocxr.__file__, "answers": answers}))


def _hex(value) -> str | None:
    return None if value is None else float(value).hex()


def compare(first: Path, second: Path) -> None:
    a, b = (json.loads(p.read_text())["answers"] for p in (first, second))
    for name in a.keys() & b.keys():
        paths = sorted(a[name].keys() & b[name].keys())
        same = sum(a[name][p] == b[name][p] for p in paths)
        labels = sum(a[name][p][3] == b[name][p][3] for p in paths)
        worst = [max(_gap(a[name][p][i], b[name][p][i]) for p in paths) for i in range(3)]
        gaps = f"P {worst[0]:.2g}, logit {worst[1]:.2g}, scope {worst[2]:.2g}"
        print(f"{name}: {same} of {len(paths)} bit for bit, {labels} labels the same; "
              f"largest change of {gaps}")  # fmt: skip


def _gap(x, y) -> float:
    if x is None or y is None:
        return 0.0 if x == y else float("inf")
    return abs(float.fromhex(x) - float.fromhex(y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="job", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("models", nargs="+")
    cmp = sub.add_parser("compare")
    cmp.add_argument("first", type=Path)
    cmp.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.job == "record":
        record(args.out, args.models)
    else:
        compare(args.first, args.second)


if __name__ == "__main__":
    main()
