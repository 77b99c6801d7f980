"""User-facing errors.

Anything a user can cause (bad params, missing or corrupt data, malformed genotypes) raises
:class:`SrnasError` with a message that names the offending thing. Stage scripts turn it into
``error: <message>`` on stderr and exit status 2, without a traceback.
"""


class SrnasError(Exception):
    """An error caused by the user's input, with a message meant for the user."""
