"""The one exception type every layer raises (trainer, codegen, host, CLI): each message names the
problem and the fix. The CLI prints it as one line, exit code 2, without a traceback."""


class TinyLSTMError(Exception):
    """A user-facing error."""
