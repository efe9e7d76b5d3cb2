"""File names as text for terminals and tab-separated output, and messages as one line.

A file name may hold tabs, newlines, other control characters and bytes that are not UTF-8;
printed as they are, they would break a TSV line or the terminal. They are escaped the way
Python writes them: backslash, t, n, r, xNN (a backslash itself doubles).
"""

from __future__ import annotations

import re
from pathlib import PurePath

_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def display_path(path) -> str:
    return "".join(_escape(c) for c in str(path))


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # any other lone surrogate cannot be printed either
        return f"\\u{code:04x}"
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    return c


def one_line(text: str) -> str:
    """A message on one line: line breaks and tabs become spaces, the rest is escaped, and a
    word over `LONGEST_WORD` characters (a path) is cut in its middle (`elided`)."""
    kept = "".join(c if c.isspace() else _escape(c) for c in str(text))
    return short_words(" ".join(kept.split()))


def short_words(line: str) -> str:
    """A line with each word over `LONGEST_WORD` characters `elided`."""
    return " ".join(elided(word) for word in line.split(" "))


LONGEST_WORD = 160  # a 5,000-character path made a 5 KB error line
KEPT_START = 40


def elided(word: str, limit: int = LONGEST_WORD) -> str:
    """`word` if short; else its start and its end (a path's file name and the folders above
    it, what tells it apart) around `...`, `limit` characters in all."""
    if len(word) <= limit:
        return word
    return f"{word[:KEPT_START]}...{word[-(limit - KEPT_START - 3) :]}"


# A word (between spaces, brackets, commas) with a slash in it: a path, POSIX or Windows.
PATH_WORD = re.compile(r"(?<![^\s(\[,;])[^\s()\[\],;]*[\\/][^\s()\[\],;]*")


# An absolute path: POSIX, home-relative or Windows (a lone "/", as in "pixel / 255", is none).
ABSOLUTE_PATH_WORD = re.compile(r"(?<![^\s(\[,;])(?:[A-Za-z]:[\\/]|[\\/~])[^\s()\[\],;]+")


def without_paths(text, absolute_only: bool = False, limit: int | None = 200) -> str | None:
    """The text with every path (or only every absolute one) cut to its last part, at most
    `limit` characters: where a machine kept its data is nobody else's business."""
    if not isinstance(text, str) or not text.strip():
        return None
    pattern = ABSOLUTE_PATH_WORD if absolute_only else PATH_WORD
    return pattern.sub(lambda m: PurePath(m[0].replace("\\", "/")).name, text)[:limit]
