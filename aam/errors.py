"""The one exception type for mistakes a user can fix (bad file, column, flag)."""


class UserError(Exception):
    """A problem with the user's input. The CLI prints its message on one line and exits with status 2."""
