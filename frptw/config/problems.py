"""A configuration problem before it is tied to a file: where (in v1 terms) and what.

Decoding and validation raise :class:`Problem` with the location as v1 sees it (an optional
proxy/visitor scope plus a dotted v1 key such as ``transport.bandwidthLimit``).  The loader, which
knows the file and its format, turns it into the one-line :class:`frptw.errors.ConfigError`,
spelling the key the way the file does (``bandwidth_limit`` in an INI ``[section]``).
"""

from typing import Optional, Tuple

from frptw.errors import FrpError

#: ("proxy" | "visitor" | "plugin", name) -- or None for the common settings.
Scope = Optional[Tuple[str, str]]


class Problem(FrpError):
    def __init__(self, message: str, key: str = "", scope: Scope = None, index: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.scope = scope
        #: Position in the v1 ``proxies``/``visitors`` list, for entries without a usable name.
        self.index = index


def quote(value: object) -> str:
    """A value as it would be written in the file, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return str(value)
