"""The one exception type that reaches users as a single line."""


class PneumoError(Exception):
    """A problem with the user's input or environment (not a bug in pneumocxr)."""
