"""Go's string-to-value conversions, reproduced exactly where frp's verdict depends on them.

frp parses numbers and booleans with Go's ``strconv`` (via go-ini for INI files, via
``ParseRangeNumbers`` for port lists, via ``ParseFloat`` for bandwidth limits).  Python's own
``int()``/``float()`` accept different spellings (whitespace, ``1_0`` in base 10, no ``0o``
after a sign...), so a config that frp rejects could slip through, or the reverse.  Every
function here raises :class:`ValueError` for input the Go function rejects.
"""

import math
import re

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

_PREFIXES = {"0x": 16, "0o": 8, "0b": 2}
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"  # '^' start, '0' digit or prefix, '_' underscore, '!' other
    i = 0
    if s.startswith(("+", "-")):
        s = s[1:]
    hexadecimal = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexadecimal = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if c.isdigit() or (hexadecimal and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def parse_int(text: str, base: int = 10, bits: int = 64) -> int:
    """``strconv.ParseInt(text, base, bits)``; ``base=0`` honours ``0x``/``0o``/``0b``/``0`` and ``_``."""
    s = text
    sign = 1
    if s.startswith(("+", "-")):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    value = _parse_uint(s, base, text)
    value *= sign
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not low <= value <= high:
        raise ValueError(f"value out of range: {text!r}")
    return value


def parse_uint(text: str, base: int = 10) -> int:
    """``strconv.ParseUint(text, base, 64)`` (no sign allowed)."""
    value = _parse_uint(text, base, text)
    if value > UINT64_MAX:
        raise ValueError(f"value out of range: {text!r}")
    return value


def _parse_uint(s: str, base: int, original: str) -> int:
    if not s:
        raise ValueError(f"invalid syntax: {original!r}")
    underscores_allowed = base == 0
    if base == 0:
        base = 10
        if s[0] == "0":
            prefix = s[:2].lower()
            if prefix in _PREFIXES and len(s) >= 3:
                base = _PREFIXES[prefix]
                s = s[2:]
            elif prefix in _PREFIXES:
                raise ValueError(f"invalid syntax: {original!r}")
            else:
                base = 8
                s = s[1:] or "0"
    value = 0
    for c in s:
        if c == "_" and underscores_allowed:
            continue
        digit = _DIGITS.find(c.lower()) if c.isascii() else -1
        if digit < 0 or digit >= base:
            raise ValueError(f"invalid syntax: {original!r}")
        value = value * base + digit
    if underscores_allowed and "_" in original and not _underscore_ok(original):
        raise ValueError(f"invalid syntax: {original!r}")
    return value


_FLOAT_SYNTAX = re.compile(
    r"[+-]?(?:(?:\d[\d_]*)?\.?[\d_]*(?:[eE][+-]?\d[\d_]*)?|0[xX][\da-fA-F_.]+[pP][+-]?\d+)$"
)


def parse_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``: no surrounding spaces; ``Inf``/``NaN`` words accepted."""
    lowered = text.lower().lstrip("+-")
    if lowered in ("inf", "infinity"):
        return -math.inf if text.startswith("-") else math.inf
    if lowered == "nan" and not text.startswith(("+", "-")):
        return math.nan
    if not text or not _FLOAT_SYNTAX.match(text) or not any(c.isdigit() for c in text):
        raise ValueError(f"invalid syntax: {text!r}")
    if "_" in text and not _underscore_ok(text):
        raise ValueError(f"invalid syntax: {text!r}")
    cleaned = text.replace("_", "")
    if cleaned.lstrip("+-")[:2].lower() == "0x":
        return float.fromhex(cleaned)
    return float(cleaned)


_INI_TRUE = frozenset("1 t T true TRUE True YES yes Yes y ON on On".split())
_INI_FALSE = frozenset("0 f F false FALSE False NO no No n OFF off Off".split())


def parse_ini_bool(text: str) -> bool:
    """go-ini's boolean spellings (note: ``y``/``n`` but not ``Y``/``N``)."""
    if text in _INI_TRUE:
        return True
    if text in _INI_FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")
