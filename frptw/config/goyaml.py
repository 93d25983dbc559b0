"""PyYAML reading YAML the way go-yaml v2 (YAML 1.1) does, for frp's v1 YAML configuration.

``y``, ``yes``, ``on``... are booleans; numbers use Go's syntax (``0o17``, ``017``, ``7_000``);
timestamps stay strings; only the first document is read.  Imported only when a YAML document
is read (see :func:`frptw.config.documents.parse_yaml`).
"""

import math
import re
from typing import Any

import yaml

from frptw.config.documents import DocumentError
from frptw.config.goconv import parse_int, parse_uint


class _GoYamlLoader(yaml.SafeLoader):
    """PyYAML with go-yaml v2's scalar resolution (see module docstring)."""


_GoYamlLoader.yaml_implicit_resolvers = {}
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NUMBER_TAG = "tag:frptw,2025:go-number"
_YAML_TRUE = "y Y yes Yes YES true True TRUE on On ON".split()
_YAML_FALSE = "n N no No NO false False FALSE off Off OFF".split()
_YAML_SPECIAL_FLOATS = {
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")

_GoYamlLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile("^(?:" + "|".join(_YAML_TRUE + _YAML_FALSE) + ")$"), list("yYnNtTfFoO")
)
_GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_GoYamlLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
_GoYamlLoader.add_implicit_resolver(_NUMBER_TAG, re.compile(r"^[-+.0-9]"), list("-+.0123456789"))


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return loader.construct_scalar(node) in _YAML_TRUE


def _construct_number(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """go-yaml v2 ``resolve``: int (Go base-0 syntax, ``_`` removed), uint, float, else string."""
    text = loader.construct_scalar(node)
    if text in _YAML_SPECIAL_FLOATS:
        return _YAML_SPECIAL_FLOATS[text]
    plain = text.replace("_", "")
    for parse in (lambda s: parse_int(s, 0), lambda s: parse_uint(s, 0)):
        try:
            return parse(plain)
        except ValueError:
            pass
    if _YAML_FLOAT.match(plain) and not math.isinf(float(plain)):
        return float(plain)  # (out of float64 range: Go's ParseFloat fails and the text stays a string)
    return text


_GoYamlLoader.add_constructor(_BOOL_TAG, _construct_bool)
_GoYamlLoader.add_constructor(_NUMBER_TAG, _construct_number)


def first_document(text: str) -> Any:
    """The first YAML document of ``text`` as Python values (None when there is none)."""
    try:
        loader = _GoYamlLoader(text)
        try:
            node = loader.get_node() if loader.check_node() else None
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise DocumentError(f"YAML syntax error: {problem}", mark.line + 1 if mark else 0) from None
