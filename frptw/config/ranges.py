"""frp's number-range lists: ``"6000-6002,6005"`` for ``[range:...]`` sections and the
``parseNumberRange``/``parseNumberRangePair`` template functions, and ``allow_ports``.

Both parsers follow frp's ``ParseRangeNumbers`` / ``NewPortsRangeSliceFromString``: items are
comma separated, each ``N`` or ``A-B`` with ``B >= A``, numbers in Go base-10 syntax with spaces
around them allowed, nothing else (an empty item is an error).
"""

from typing import List, NamedTuple, Tuple

from frptw.config.goconv import parse_int
from frptw.errors import FrpError

#: Expanding more numbers than this would only be a typo (or an attack on memory).
MAX_EXPANSION = 1 << 20


class RangeError(FrpError, ValueError):
    """A range list that frp would refuse; the message is frp's wording."""


#: Go's names for the types a template literal can have, for frp's "wrong type" message.
_GO_TYPES = {bool: "bool", int: "int", float: "float64"}


def _items(text: str) -> List[Tuple[int, int]]:
    if not isinstance(text, str):  # a template passed a number or a bool, as Go's reflect call refuses
        got = _GO_TYPES.get(type(text), type(text).__name__)
        raise RangeError(f"wrong type for value; expected string; got {got}")
    out = []
    for item in text.strip().split(","):
        parts = item.split("-")
        if len(parts) > 2:
            raise RangeError("range number is invalid")
        try:
            numbers = [parse_int(p.strip()) for p in parts]
        except ValueError:
            bad = next(p.strip() for p in parts if not _is_int(p.strip()))
            raise RangeError(f'range number is invalid, "{bad}" is not an integer') from None
        low, high = numbers[0], numbers[-1]
        if high < low:
            raise RangeError("range number is invalid")
        out.append((low, high))
    return out


def _is_int(text: str) -> bool:
    try:
        parse_int(text)
    except ValueError:
        return False
    return True


def parse_range_numbers(text: str) -> List[int]:
    """Expand ``"1000-1002,1005"`` to ``[1000, 1001, 1002, 1005]`` (duplicates kept, in order)."""
    out: List[int] = []
    for low, high in _items(text):
        if len(out) + (high - low + 1) > MAX_EXPANSION:
            raise RangeError(f"range expands to more than {MAX_EXPANSION} numbers")
        out.extend(range(low, high + 1))
    return out


class NumberPair(NamedTuple):
    """One element of ``parseNumberRangePair``: templates read ``.First`` and ``.Second``."""

    First: int
    Second: int


def parse_range_pairs(first: str, second: str) -> List[NumberPair]:
    """``parseNumberRangePair``: both lists must expand to the same count."""
    a, b = parse_range_numbers(first), parse_range_numbers(second)
    if len(a) != len(b):
        raise RangeError("first and second range numbers are not in pairs")
    return [NumberPair(x, y) for x, y in zip(a, b)]


def parse_port_ranges(text: str) -> List[Tuple[int, int]]:
    """``allow_ports = "2000-3000,3001"`` as inclusive ``(start, end)`` pairs, not expanded."""
    return _items(text)
