"""The functions a configuration template can call, and how values print.

Go's text/template builtins (``and or not len index eq ne lt le gt ge print printf println``),
with Go's truth and printing rules, plus frp's ``parseNumberRange`` and ``parseNumberRangePair``.
"""

import re
from typing import Any, Callable, Dict

from frptw.config.ranges import NumberPair, parse_range_numbers, parse_range_pairs


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to; prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def truth(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)) and not isinstance(value, NumberPair):
        return bool(value)
    return True


def format_value(value: Any) -> str:
    """fmt.Sprint of one value, as text/template prints it."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, NumberPair):
        return f"{{{value.First} {value.Second}}}"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{format_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _comparable(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return True
    return type(a) is type(b)


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise ValueError("missing argument for comparison")
    for other in others:
        if not _comparable(first, other):
            raise ValueError("incompatible types for comparison")
        if first == other:
            return True
    return False


def _order(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if not _comparable(a, b) or isinstance(a, (bool, list, dict, NumberPair)):
            raise ValueError("incompatible types for comparison")
        return op(a, b)

    return compare


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, "")
        elif isinstance(item, (list, tuple, str)) and isinstance(key, int):
            if not 0 <= key < len(item):
                raise ValueError(f"index out of range: {key}")
            item = item[key]
        else:
            raise ValueError(f"can't index item of type {type(item).__name__}")
    return item


def _sprint(*args: Any) -> str:
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += format_value(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([vsdqtxXfeg%])")


def _sprintf(fmt: str, *args: Any) -> str:
    queue = list(args)

    def verb(match: "re.Match[str]") -> str:
        flags, width, precision, code = match.groups()
        if code == "%":
            return "%"
        if not queue:
            return f"%!{code}(MISSING)"
        arg = queue.pop(0)
        if code in "vs":
            text = format_value(arg)
        elif code == "q":
            text = '"' + format_value(arg).replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif code == "t":
            text = format_value(arg)
        else:
            spec = f"{flags}{width}{'.' + precision if precision else ''}{code}"
            try:
                return ("%" + spec) % arg
            except TypeError:
                return f"%!{code}({format_value(arg)})"
        return f"{text:{'<' if '-' in flags else '>'}{width or 0}}"

    return _VERB.sub(verb, fmt)


def _length(item: Any) -> int:
    if not isinstance(item, (str, list, tuple, dict)) or isinstance(item, NumberPair):
        raise ValueError(f"len of type {type(item).__name__}")
    return len(item)


BUILTINS: Dict[str, Callable[..., Any]] = {
    "and": lambda *a: next((x for x in a if not truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if truth(x)), a[-1]),
    "not": lambda a: not truth(a),
    "len": _length,
    "index": _index,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _order(lambda a, b: a < b),
    "le": _order(lambda a, b: a <= b),
    "gt": _order(lambda a, b: a > b),
    "ge": _order(lambda a, b: a >= b),
    "print": _sprint,
    "println": lambda *a: " ".join(format_value(x) for x in a) + "\n",
    "printf": _sprintf,
}

#: frp's extra functions, available in TOML/YAML/JSON files only.
RANGE_FUNCTIONS: Dict[str, Callable[..., Any]] = {
    "parseNumberRange": parse_range_numbers,
    "parseNumberRangePair": parse_range_pairs,
}
