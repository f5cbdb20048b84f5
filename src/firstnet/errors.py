"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits with code 2."""


class UserError(ValueError):
    """Something the user gave us is wrong; the message says what and what to do instead.

    It is a ValueError, so that code calling the library can catch bad settings the usual Python way.
    """


def first_line(error):
    """An exception as one short line, for messages that must stay one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
