"""The one exception type users see: every message names the problem and the fix."""


class TinyLSTMError(Exception):
    """A user-facing error. The CLI prints its message without a traceback."""
