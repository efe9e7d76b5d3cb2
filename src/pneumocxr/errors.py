"""The one exception type that reaches users as a single line, how another exception is quoted
in one, and the check of a count a caller gives."""


class PneumoError(Exception):
    """A problem with the user's input or environment (not a bug in pneumocxr)."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message as one line of at most `limit` characters (its type's name when
    it has no message): what a library's error may add to ours."""
    return (str(err) or type(err).__name__).strip().splitlines()[0][:limit]


def whole_number(value, name: str, minimum: int = 1) -> int:
    """`value` as an int of at least `minimum`, or one line naming `name`: every count a caller
    gives (a batch size) is checked here, so that -1 is not an empty answer and 1.5 no
    TypeError."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise PneumoError(
            f"{name} must be a whole number, got {type(value).__name__} {value!r:.60}"
        )
    if value < minimum:
        raise PneumoError(f"{name} must be at least {minimum}, got {value}")
    return int(value)
