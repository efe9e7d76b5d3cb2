"""Opening only plain files. A named pipe listed as an image waits forever for a writer, and a
device such as /dev/zero never ends: whatever reads a path the user gave opens it here."""

from __future__ import annotations

import os
import stat

from pneumocxr.errors import PneumoError

_KINDS = {
    stat.S_ISFIFO: "a named pipe",
    stat.S_ISCHR: "a device",
    stat.S_ISBLK: "a device",
    stat.S_ISSOCK: "a socket",
    stat.S_ISDIR: "a folder",
}


class NotRegularFile(PneumoError, OSError):
    """A path that is not a plain file; an OSError too, so that code skipping unreadable
    files skips it. `reason` says what it is, without the path."""

    def __init__(self, path, kind: str):
        self.kind = kind  # "a named pipe", "a device"...
        self.reason = f"not a regular file ({kind})"
        super().__init__(f"{os.fsdecode(path)}: {self.reason}")


def open_regular(path):
    """`open(path, "rb")` for a plain file (through links); anything else raises
    NotRegularFile without being opened. The open itself does not block, and the kind is
    checked again on the open file, should the path change in between. The file object's
    `name` is the path (pydicom reopens a file by it to read deferred pixel data)."""
    _check(os.stat(path).st_mode, path)

    def opener(name, flags):
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            _check(os.fstat(fd).st_mode, path)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return open(path, "rb", opener=opener)


def is_regular(path) -> bool:
    """A plain file, through links; False for what cannot be looked at."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def irregular_kind(path) -> str | None:
    """What `path` is when it exists and is not a plain file ("a named pipe"), else None."""
    try:
        _check(os.stat(path).st_mode, path)
    except NotRegularFile as err:
        return err.kind
    except (OSError, ValueError):
        return None
    return None


def _check(mode: int, path) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS.items() if test(mode)), "not a file")
    raise NotRegularFile(path, kind)
