"""The one exception type that reaches users as a single line, and how another exception is
quoted in one."""


class PneumoError(Exception):
    """A problem with the user's input or environment (not a bug in pneumocxr)."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message as one line of at most `limit` characters (its type's name when
    it has no message): what a library's error may add to ours."""
    return (str(err) or type(err).__name__).strip().splitlines()[0][:limit]
