"""The SIP parsers' one exception type."""


class ParseError(ValueError):
    """A message, URI or header value that does not follow the grammar.

    `reason` is a short text fit for a 400 reason phrase or a log line.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
