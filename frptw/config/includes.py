"""frpc's ``includes``: each entry is ``DIR/GLOB``; every regular file of ``DIR`` whose name
matches ``GLOB`` is loaded, in name order.

As in frp, a relative ``DIR`` is relative to the working directory (not to the config file),
the directory must exist, and the glob has Go's ``filepath.Match`` syntax (``*``, ``?``,
``[a-z]``, ``[^a]``, ``\\`` escapes); a malformed glob simply matches nothing.
"""

import os
import re
from typing import List, Optional

from frptw.errors import FrpError


class IncludeError(FrpError, OSError):
    """The directory of an include pattern does not exist or cannot be listed."""


def _go_glob_regex(pattern: str) -> Optional["re.Pattern[str]"]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\":
            i += 1
            if i == len(pattern):
                return None
            out += re.escape(pattern[i])
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return None
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            if not body:
                return None
            out += "[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    try:
        return re.compile(out + r"\Z", re.DOTALL)
    except re.error:
        return None


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` (a malformed pattern matches nothing)."""
    regex = _go_glob_regex(pattern)
    return bool(regex and regex.match(name))


def include_files(entry: str) -> List[str]:
    """The files an ``includes`` entry selects; :class:`IncludeError` if its directory is missing."""
    directory = os.path.abspath(os.path.dirname(entry) or ".")
    if not os.path.exists(directory):
        raise IncludeError(f"directory {directory} of include {entry!r} does not exist")
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        raise IncludeError(f"cannot list {directory} for include {entry!r}: {e.strerror}") from None
    pattern = os.path.join(directory, os.path.basename(entry))
    return [
        os.path.join(directory, e.name)
        for e in entries
        if not e.is_dir(follow_symlinks=False) and go_match(pattern, os.path.join(directory, e.name))
    ]
