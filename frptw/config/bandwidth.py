"""``bandwidth_limit`` values: a number (fractions allowed) followed by ``MB`` or ``KB``.

Parsed like frp's ``BandwidthQuantity`` so that the same strings are accepted: surrounding
space is ignored, the unit is case-sensitive, 1 KB = 1024 bytes, and the number uses Go's
float syntax (``"1.5MB"``, but not ``"1.5 MB"``).
"""

import math

from frptw.config.goconv import INT64_MIN, parse_float
from frptw.errors import FrpError

_UNITS = {"MB": 1024 * 1024, "KB": 1024}


class BandwidthError(FrpError, ValueError):
    """Not a bandwidth frp accepts; the message says why."""


def parse_bandwidth(text: str) -> int:
    """Bytes per second for ``text``; 0 for ``""`` (no limit)."""
    text = text.strip()
    if not text:
        return 0
    unit = text[-2:]
    if unit not in _UNITS:
        raise BandwidthError(f'"{text}": unit not supported, use a number followed by MB or KB (e.g. 1.5MB)')
    try:
        number = parse_float(text[:-2])
    except ValueError:
        raise BandwidthError(f'"{text}": "{text[:-2]}" is not a number') from None
    if not math.isfinite(number):
        # frp accepts "infMB"; Go converts the infinite float to the smallest int64 on amd64.
        return INT64_MIN
    return int(number * _UNITS[unit])
