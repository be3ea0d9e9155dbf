"""The one exception type users see: a one-line message saying what is wrong and how to fix it."""


class UserError(Exception):
    """Bad input or environment. The CLI prints ``error: <message>`` and exits with status 2."""
