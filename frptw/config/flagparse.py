"""Command-line flags read the way Go's pflag (under cobra) reads frp's.

frps and frpc's single-proxy commands take their whole configuration from flags
(``frps -t 123 -p 7000``, ``frpc tcp -s host -P 7000 -l 22 -r 6000``), so these flags must mean
on our command line what they mean on frp's: ``--name=value`` and ``--name value``, ``-n value``,
``-nvalue`` and ``-n=value``; a bool flag alone is true and takes ``=false``; a list flag
splits its value at commas and adds up when repeated; a map flag takes ``key=value`` pairs;
``_`` and ``-`` are the same in a long name (frp normalises them); integers are read as Go's
``strconv.ParseInt(s, 0, 64)`` reads them.  Plain data in, plain data out: no I/O here.
"""

import csv
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from frptw.errors import ConfigError

#: Flag kinds: what a value is parsed into.
STRING, INT, BOOL, LIST, MAP = "string", "int", "bool", "list", "map"

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_GO_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO]?[0-7_]*|0[bB][01_]+|[1-9][0-9_]*)\Z")


class FlagError(ConfigError):
    """A command line frp would refuse, with pflag's reason."""


@dataclass(frozen=True)
class Flag:
    """One flag: its long ``name`` (dashes), optional one-letter ``short``, ``kind``, what it
    sets in the configuration document (``key``, dotted), its Go default and its help."""

    name: str
    short: Optional[str]
    kind: str
    key: str
    default: Any = None
    help: str = ""

    @property
    def spelling(self) -> str:
        """``-n, --proxy-name`` as pflag names a flag in its errors."""
        return f"-{self.short}, --{self.name}" if self.short else f"--{self.name}"


def _go_int(text: str) -> int:
    if not _GO_INT.match(text) or "__" in text or text.endswith("_"):
        raise ValueError(text)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "")
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
        return sign * int(digits[1:], 8)  # Go's base-0 leading zero: octal
    return sign * int(digits, 0)


def _split(text: str) -> List[str]:
    """pflag reads list and map values as one CSV record."""
    if text == "":
        return []
    return next(csv.reader([text]))


def _convert(flag: Flag, text: str) -> Any:
    try:
        if flag.kind == INT:
            return _go_int(text)
        if flag.kind == BOOL:
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(text)
        if flag.kind == LIST:
            return _split(text)
        if flag.kind == MAP:
            pairs = {}
            for item in _split(text):
                key, sep, value = item.partition("=")
                if not sep:
                    raise FlagError(f'invalid argument "{text}" for "{flag.spelling}" flag: '
                                    f"{item} must be formatted as key=value")
                pairs[key] = value
            return pairs
        return text
    except FlagError:
        raise
    except ValueError:
        raise FlagError(f'invalid argument "{text}" for "{flag.spelling}" flag: not a valid {flag.kind}') from None


class FlagSet:
    """The flags one command takes."""

    def __init__(self, flags: Sequence[Flag]) -> None:
        self.flags = tuple(flags)
        self._long = {f.name: f for f in self.flags}
        self._short = {f.short: f for f in self.flags if f.short}

    def parse(self, args: Sequence[str], interspersed: bool = True) -> Tuple[Dict[str, Any], List[str]]:
        """The flags given (by long name; flags not given are absent) and the other arguments.

        With ``interspersed=False`` parsing stops at the first argument that is not a flag (a
        subcommand's name): it and everything after it are returned as they are.
        """
        values: Dict[str, Any] = {}
        rest: List[str] = []
        args = list(args)
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                rest.extend(args[i:])
                break
            if not arg.startswith("-") or arg == "-":
                rest.append(arg)
                if not interspersed:
                    rest.extend(args[i:])
                    break
                continue
            if arg.startswith("--"):
                name, eq, inline = arg[2:].partition("=")
                flag = self._long.get(name.replace("_", "-"))
                if flag is None:
                    raise FlagError(f"unknown flag: --{name}")
                i = self._take(flag, values, inline if eq else None, args, i, f"--{name}")
                continue
            shorts = arg[1:]
            while shorts:
                letter, shorts = shorts[0], shorts[1:]
                flag = self._short.get(letter)
                if flag is None:
                    raise FlagError(f"unknown shorthand flag: '{letter}' in {arg}")
                if flag.kind == BOOL and not shorts.startswith("="):
                    self._set(flag, values, "true")
                    continue
                inline = shorts[1:] if shorts.startswith("=") else shorts
                i = self._take(flag, values, inline if shorts else None, args, i, f"-{letter}")
                break
        return values, rest

    def _take(self, flag: Flag, values: Dict[str, Any], inline: Optional[str], args: List[str], i: int,
              written: str) -> int:
        if inline is not None:
            self._set(flag, values, inline)
        elif flag.kind == BOOL:
            self._set(flag, values, "true")
        elif i < len(args):
            self._set(flag, values, args[i])
            i += 1
        else:
            raise FlagError(f"flag needs an argument: {written}")
        return i

    def _set(self, flag: Flag, values: Dict[str, Any], text: str) -> None:
        value = _convert(flag, text)
        if flag.kind == LIST and flag.name in values:
            values[flag.name] = values[flag.name] + value
        elif flag.kind == MAP and flag.name in values:
            values[flag.name] = {**values[flag.name], **value}
        else:
            values[flag.name] = value

    def usage(self) -> str:
        """One line a flag, as cobra lists them."""
        lines = []
        for flag in self.flags:
            head = f"  -{flag.short}, --{flag.name}" if flag.short else f"      --{flag.name}"
            kind = "" if flag.kind == BOOL else f" {flag.kind}"
            default = "" if flag.default in (None, "", 0, False, [], {}) else f" (default {flag.default!r})"
            lines.append(f"{head + kind:<40} {flag.help}{default}")
        return "\n".join(lines)
