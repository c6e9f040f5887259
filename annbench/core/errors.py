"""The one exception type that means "the user gave us something wrong".

Command-line entry points catch :class:`UserError`, print its message on one line
and exit with status 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input (config, dataset, option): the message names it and what is valid."""

    exit_code = 2

    def __str__(self) -> str:
        # One line, always: a multi-line message would read like a traceback.
        return " ".join(str(self.args[0] if self.args else "").split())
