"""Text, CSV, JSON and figures written atomically (and read back the way they were written);
the SHA-256 of a file."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.atomic import atomic_path
from pneumocxr.fileio.folders import link_problem
from pneumocxr.fileio.regular import open_regular


def write_text(path, text: str) -> Path:
    # File names may hold bytes that are not UTF-8: shown escaped rather than failing.
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
    return Path(path)


def write_csv(path, table) -> Path:
    """A table as UTF-8 CSV; paths that are not UTF-8 keep their exact bytes, and text a
    spreadsheet would run as a formula is quoted (`escape_cell`): read them back with
    `read_csv`, so a listed file can always be found again."""
    table = table.apply(lambda column: column.map(escape_cell))
    with atomic_path(path) as tmp:
        # RFC 4180's CRLF: Python's csv quotes a cell holding CR only when CR ends lines, and
        # an unquoted CR in a file name would split its row when read back.
        table.to_csv(tmp, index=False, encoding="utf-8", errors="surrogateescape",
                     lineterminator="\r\n")  # fmt: skip
    return Path(path)


UTF16_SAVE_AS = "not UTF-8 text (it looks like UTF-16{}); save it as UTF-8"


def check_utf8_text(path) -> None:
    """Refuse, in words, a text file saved as UTF-16: without a byte-order mark its ASCII
    letters are valid UTF-8 with a NUL byte between each, and a CSV's columns came out as
    'p\\x00a\\x00t\\x00h'."""
    try:
        with open_regular(path) as handle:  # a named pipe is never opened for reading
            head = handle.read(4096)
    except OSError:
        return  # the reader that follows says why
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PneumoError(f"{path} is {UTF16_SAVE_AS.format('')}")
    pairs = len(head) // 2
    if pairs and b"\x00" in head:
        low = sum(head[i] == 0 for i in range(1, 2 * pairs, 2))  # little-endian ASCII
        high = sum(head[i] == 0 for i in range(0, 2 * pairs, 2))  # big-endian ASCII
        if max(low, high) > pairs // 2 and min(low, high) <= pairs // 10:
            raise PneumoError(f"{path} is {UTF16_SAVE_AS.format(' without a byte-order mark')}")


def read_csv(path, **options):
    """A CSV that `write_csv` wrote, with its text cells as they were before quoting."""
    import pandas as pd

    check_utf8_text(path)
    table = pd.read_csv(path, encoding="utf-8", encoding_errors="surrogateescape", **options)
    return table.apply(lambda column: column.map(unescape_cell))


# OWASP's advice against CSV injection: a cell starting with = + - @ tab or CR is a formula to
# spreadsheets (`=cmd|' /C calc'!A0` as a file name), so it gets a leading single quote.
# Quotes before such a character get one more, so `unescape_cell` restores any text exactly.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def escape_cell(value):
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def unescape_cell(value):
    if isinstance(value, str) and value.startswith("'") and _FORMULA.match(value, 1):
        return value[1:]
    return value


def write_json(path, obj) -> Path:
    """Strict JSON: NaN and infinities (e.g. an AUC with one class) become null."""
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _finite(obj.item())
    return obj


def read_json(path) -> dict:
    check_utf8_text(path)
    try:  # utf-8-sig: editors on Windows may start the file with a byte-order mark
        with open_regular(path) as handle:
            return json.loads(handle.read().decode("utf-8-sig"))
    except FileNotFoundError:
        raise PneumoError(link_problem(path) or f"file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PneumoError(f"{path} is not valid JSON: {err}") from None


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            kind = Path(path).suffix.lstrip(".").lower() or "png"
            # PNGs say who made them, so a later run knows it may replace them.
            mark = {"metadata": {"Software": "pneumocxr"}} if kind == "png" else {}
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=kind, **mark)
    finally:
        plt.close(fig)  # also when saving fails: figures otherwise pile up in pyplot
    return Path(path)


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
