"""A parser for frp's legacy INI files with the semantics of go-ini (``gopkg.in/ini.v1``).

frp reads INI through go-ini, whose rules differ from :mod:`configparser` in ways that decide
whether a file is accepted, so they are reproduced here:

* Line based; leading white space is ignored; ``#`` or ``;`` starts a comment line.
* ``[name]`` opens a section; the name runs to the *last* ``]`` of the line and is not trimmed.
  A repeated section name reopens (merges into) the earlier section.  ``[]`` is an error, as is
  a line starting with ``[`` that has no ``]``.
* ``key = value`` or ``key: value`` (first ``=`` or ``:``); a key may be quoted with ``"`` or a
  backtick; an empty key is an error.  Without a delimiter the line is an error, unless boolean
  keys are allowed (frp's loader allows them: the key then has the value ``true``).
* Values: a value opened with a backtick or ``\"\"\"`` continues, across lines if needed, up to
  its closing quote (missing -> error); otherwise it is trimmed, a trailing ``\\`` joins the next
  line, and one pair of surrounding ``'`` or ``"`` is removed.  frp's loader keeps inline
  comments (``token = abc # x`` is ``abc # x``); go-ini's default, used by frp's format
  *detection*, strips them.
* Lookups (:meth:`Section.get`) fall back to the parent section named by the part before the
  last ``.`` (``[web.v2]`` inherits from ``[web]``) and expand ``%(other)s`` references.
"""

import re
from typing import Dict, Iterator, List, Optional, Tuple

from frptw.errors import FrpError

DEFAULT_SECTION = "DEFAULT"
#: Go's ``unicode.IsSpace`` (Python's ``str.strip()`` also strips ``\x1c``-``\x1f``, Go does not).
SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_REFERENCE = re.compile(r"%\(([^)]+)\)s")
_MAX_REFERENCE_DEPTH = 99


class IniSyntaxError(FrpError, ValueError):
    """The text is not INI as go-ini reads it; ``line`` is 1-based."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


class Section:
    """One section: its own keys (raw values, in file order) and a link to its file."""

    def __init__(self, ini: "IniFile", name: str, line: int):
        self.ini = ini
        self.name = name
        self.line = line
        self.keys: Dict[str, str] = {}

    def parent(self) -> Optional["Section"]:
        """The nearest existing section named by a prefix of ours ending before a ``.``."""
        name = self.name
        while "." in name:
            name = name.rsplit(".", 1)[0]
            if name in self.ini.sections:
                return self.ini.sections[name]
        return None

    def owner_of(self, key: str) -> Optional["Section"]:
        """The section whose own key ``key`` a lookup here resolves to (self or an ancestor)."""
        section: Optional[Section] = self
        while section is not None:
            if key in section.keys:
                return section
            section = section.parent()
        return None

    def get(self, key: str) -> Optional[str]:
        """go-ini ``GetKey(key).String()``: inherited from parents, ``%(ref)s`` expanded."""
        owner = self.owner_of(key)
        if owner is None:
            return None
        return owner._expand(key, owner.keys[key])

    def _expand(self, key: str, value: str) -> str:
        for _ in range(_MAX_REFERENCE_DEPTH):
            match = _REFERENCE.search(value)
            if match is None:
                break
            ref = match.group(1)
            owner = self.owner_of(ref)
            if owner is None or (owner is self and ref == key):
                default = self.ini.sections.get(DEFAULT_SECTION)
                owner = default if default is not None and ref in default.keys else None
                if owner is None:
                    break
            value = value.replace(match.group(0), owner.keys[ref])
        return value

    def own_items(self) -> Iterator[Tuple[str, str]]:
        """This section's own keys with raw values (go-ini ``KeysHash``), for prefix maps."""
        return iter(self.keys.items())


class IniFile:
    """Parsed INI: sections in first-appearance order (``DEFAULT`` holds keys before any header)."""

    def __init__(self) -> None:
        self.sections: Dict[str, Section] = {}
        self.reopened: List[Tuple[str, int]] = []

    def section(self, name: str, line: int = 0) -> Section:
        """go-ini ``NewSection``: return the section, creating it at the end if new."""
        if name not in self.sections:
            self.sections[name] = Section(self, name, line)
        return self.sections[name]


def parse_ini(text: str, allow_boolean_keys: bool = True, strip_inline_comments: bool = False) -> IniFile:
    """Parse ``text``; raise :class:`IniSyntaxError` where go-ini would fail."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    ini = IniFile()
    current = ini.section(DEFAULT_SECTION)
    index = 0
    while index < len(lines):
        number = index + 1
        raw = lines[index]
        index += 1
        line = raw.lstrip(SPACE)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            close = line.rfind("]")
            if close == -1:
                raise IniSyntaxError(f"unclosed section header {line.strip(SPACE)!r}", number)
            name = line[1:close]
            if not name:
                raise IniSyntaxError("empty section name", number)
            if name in ini.sections and name != DEFAULT_SECTION:
                ini.reopened.append((name, number))
            current = ini.section(name, number)
            continue
        key, rest = _read_key(line, number)
        if key is None:
            if not allow_boolean_keys:
                raise IniSyntaxError(f"no '=' or ':' in line {line.strip(SPACE)!r}", number)
            key, index = _read_value(line, lines, index, number, strip_inline_comments)
            value = "true"
        else:
            value, index = _read_value(rest, lines, index, number, strip_inline_comments)
        if not key:
            raise IniSyntaxError("empty key name", number)
        current.keys[key] = value
    return ini


def _read_key(line: str, number: int) -> Tuple[Optional[str], str]:
    """(key, rest of line after the delimiter), or (None, "") when there is no delimiter."""
    for quote in ('"""', '"', "`"):
        if line.startswith(quote) and (quote != '"""' or len(line) > 6):
            end = line.find(quote, len(quote))
            if end == -1:
                raise IniSyntaxError(f"missing closing key quote in {line.strip(SPACE)!r}", number)
            after = line[end + len(quote):]
            delimiter = min((i for i in (after.find("="), after.find(":")) if i >= 0), default=-1)
            if delimiter < 0:
                return None, ""
            return line[len(quote):end].strip(SPACE), after[delimiter + 1:]
    delimiter = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
    if delimiter < 0:
        return None, ""
    return line[:delimiter].strip(SPACE), line[delimiter + 1:]


def _read_value(text: str, lines: List[str], index: int, number: int, strip_comments: bool) -> Tuple[str, int]:
    """The value starting in ``text`` and the index of the next unread line."""
    value = text.lstrip(SPACE)
    if not value:
        return "", index
    quote = '"""' if len(value) > 3 and value.startswith('"""') else "`" if value[0] == "`" else ""
    if quote:
        body = value[len(quote):]
        end = body.rfind(quote)
        if end >= 0:
            return body[:end], index
        while True:
            if index >= len(lines):
                raise IniSyntaxError(f"missing closing {quote} for the value started here", number)
            following = lines[index]
            index += 1
            end = following.rfind(quote)
            if end >= 0:
                return body + following[:end], index
            body += following
    value = value.strip(SPACE)
    if value.endswith("\\"):
        value = value[:-1]
        while index < len(lines):
            following = lines[index].strip(SPACE)
            index += 1
            if not following:
                break
            value += following
            if not value.endswith("\\"):
                break
            value = value[:-1]
        return value, index
    if strip_comments:
        cut = min((i for i in (value.find("#"), value.find(";")) if i >= 0), default=-1)
        if cut >= 0:
            value = value[:cut].strip(SPACE)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and value.count(value[0]) == 2:
        value = value[1:-1]
    return value, index


def split_list(value: str) -> List[str]:
    """go-ini ``Key.Strings(",")``: split on commas (``\\,`` escapes one), trim each item."""
    items: List[str] = []
    buffer = ""
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if char not in "\\,":
                buffer += "\\"
            buffer += char
        elif char == "\\":
            escaped = True
        elif char == ",":
            items.append(buffer.strip(SPACE))
            buffer = ""
        else:
            buffer += char
    if buffer:
        items.append(buffer.strip(SPACE))
    return items


def looks_like_legacy_ini(text: str) -> bool:
    """frp's format detection: go-ini parses the raw text with default options and finds [common]."""
    try:
        ini = parse_ini(text, allow_boolean_keys=False, strip_inline_comments=True)
    except IniSyntaxError:
        return False
    return "common" in ini.sections
