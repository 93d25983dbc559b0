"""The Go ``text/template`` language as frp applies it to every configuration file.

frp renders the whole file before parsing it, with ``.Envs`` bound to the process environment
(``{{ .Envs.FRP_TOKEN }}``; a variable that is not set renders as ``<no value>``).  For the v1
formats two functions are added, ``parseNumberRange`` and ``parseNumberRangePair``, used with
``range`` to generate proxies.

This module implements the part of the language configurations use: text with ``{{ }}``
actions and ``{{-``/``-}}`` trimming, comments, pipelines with ``|``, variables (``$x :=``,
``$i, $v :=``, ``$x =``), field chains on maps and on range pairs (``.First``), literals,
``if``/``else if``/``else``, ``range`` (with ``else``, ``break``, ``continue``), ``with``, and
the builtins ``and or not len index eq ne lt le gt ge print printf println``.  Templates that
define or call named templates, or use the HTML/JS escapers, are refused with a clear error
rather than rendered differently from Go.
"""

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from frptw.config.ranges import NumberPair, RangeError
from frptw.config.template_functions import BUILTINS, MISSING, RANGE_FUNCTIONS, format_value, truth
from frptw.errors import FrpError


class TemplateError(FrpError, ValueError):
    """The template does not parse or fails to execute; ``line`` is 1-based."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


_SPACE = " \t\r\n"


class _Envs(dict):
    """``.Envs``: the environment; remembers the names looked up but not set."""

    def __init__(self, env: Mapping[str, str]):
        super().__init__(env)
        self.missing: List[str] = []

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self and name not in self.missing:
            self.missing.append(name)
        return super().get(name, default)


class _Values:
    """The template's root ``.``: only ``.Envs`` exists, like frp's ``Values`` struct."""

    def __init__(self, env: Mapping[str, str]):
        self.Envs = _Envs(env)


# ---------------------------------------------------------------------------------------------
# lexing

_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n]+)
      | (?P<declare>:=)
      | (?P<punct>[=|(),])
      | (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<char>'(?:[^'\\\n]|\\.)+')
      | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?))
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<variable>\$[A-Za-z0-9_]*)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


def _split(source: str) -> List[Tuple[str, Any, int]]:
    """Text and action items: ("text", str, line) / ("action", [tokens], line)."""
    items: List[Tuple[str, Any, int]] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(_SPACE)
        line = source.count("\n", 0, pos) + 1
        if start < 0:
            items.append(("text", text, line))
            return items
        inner = start + 2
        if source[inner:inner + 1] == "-" and source[inner + 1:inner + 2] in tuple(_SPACE):
            text = text.rstrip(_SPACE)
            inner += 2
        items.append(("text", text, line))
        line = source.count("\n", 0, start) + 1
        tokens, pos, trim_next = _lex_action(source, inner, line)
        if tokens is not None:
            items.append(("action", tokens, line))


def _lex_action(source: str, pos: int, line: int) -> Tuple[Optional[List[Tuple[str, str]]], int, bool]:
    """Tokens of one action starting at ``pos`` (None for a comment), the position after
    ``}}``, and whether the text that follows is to be trimmed."""
    stripped = pos
    while stripped < len(source) and source[stripped] in _SPACE:
        stripped += 1
    if source.startswith("/*", stripped):
        end = source.find("*/", stripped + 2)
        if end < 0:
            raise TemplateError("unclosed comment", line)
        rest = end + 2
        trim = False
        if source.startswith(" -}}", rest):
            trim, rest = True, rest + 2
        if not source.startswith("}}", rest):
            raise TemplateError("comment ends before closing delimiter", line)
        return None, rest + 2, trim
    tokens: List[Tuple[str, str]] = []
    depth = 0
    while True:
        if pos >= len(source):
            raise TemplateError("unclosed action", line)
        end = 2 if source.startswith("}}", pos) else 4 if source[pos] in _SPACE and source.startswith("-}}", pos + 1) else 0
        if end and depth == 0:
            if not tokens:
                raise TemplateError("missing value for command", line)
            return tokens, pos + end, end == 4
        match = _TOKEN.match(source, pos)
        if match is None:
            raise TemplateError(f"unexpected {source[pos]!r} in action", line)
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "field" and tokens and tokens[-1][0] in ("close", "variable") and source[pos - 1] not in _SPACE:
            kind = "chain"
        if kind == "punct":
            kind = {"(": "open", ")": "close"}.get(value, value)
            depth += {"open": 1, "close": -1}.get(kind, 0)
        if kind != "space":
            tokens.append((kind, value))
        pos = match.end()


# ---------------------------------------------------------------------------------------------
# parsing into a tree of nodes: ("text", s) | ("action", pipe) | ("if", branches, else) |
# ("range", pipe, body, else) | ("with", branches, else) | ("break",) | ("continue",)

Pipe = Tuple[List[str], bool, List[List[Any]]]  # declared variables, is-assignment, commands


class _Parser:
    def __init__(self, items: List[Tuple[str, Any, int]], functions: Mapping[str, Callable]):
        self.items = items
        self.index = 0
        self.functions = functions
        self.scopes: List[List[str]] = [["$"]]
        self.loops = 0

    def parse(self) -> List[Any]:
        nodes, stop = self._list()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop[0]}}}}}", stop[1])
        return nodes

    def _list(self) -> Tuple[List[Any], Optional[Tuple[str, int, List[Tuple[str, str]]]]]:
        """Nodes up to an ``end``/``else`` (returned as the stop) or the end of input."""
        nodes: List[Any] = []
        while self.index < len(self.items):
            kind, value, line = self.items[self.index]
            self.index += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            head = value[0]
            if head == ("ident", "end") or head == ("ident", "else"):
                return nodes, (head[1], line, value[1:])
            nodes.append(self._action(value, line) + (line,))
        return nodes, None

    def _action(self, tokens: List[Tuple[str, str]], line: int) -> Any:
        head = tokens[0]
        if head[0] == "ident" and head[1] in ("if", "with"):
            return self._conditional(head[1], tokens[1:], line)
        if head == ("ident", "range"):
            return self._range(tokens[1:], line)
        if head[0] == "ident" and head[1] in ("break", "continue"):
            if self.loops == 0:
                raise TemplateError(f"{{{{{head[1]}}}}} outside {{{{range}}}}", line)
            return (head[1],)
        if head[0] == "ident" and head[1] in ("define", "template", "block"):
            raise TemplateError(f"{{{{{head[1]}}}}} (named templates) is not supported", line)
        return ("action", self._pipe(tokens, line, declare_limit=1))

    def _block(self, line: int) -> Tuple[List[Any], Optional[Tuple[str, int, List[Tuple[str, str]]]]]:
        self.scopes.append([])
        try:
            nodes, stop = self._list()
        finally:
            self.scopes.pop()
        if stop is None:
            raise TemplateError("unexpected EOF: missing {{end}}", line)
        return nodes, stop

    def _conditional(self, keyword: str, tokens: List[Tuple[str, str]], line: int) -> Any:
        branches = []
        while True:
            self.scopes.append([])
            try:
                pipe = self._pipe(tokens, line, declare_limit=1)
                body, stop = self._list()
            finally:
                self.scopes.pop()
            if stop is None:
                raise TemplateError("unexpected EOF: missing {{end}}", line)
            branches.append((pipe, body))
            word, line, rest = stop
            if word == "end":
                return (keyword, branches, [])
            if rest and rest[0] == ("ident", keyword):
                tokens = rest[1:]
                continue
            if rest:
                raise TemplateError("unexpected tokens after {{else}}", line)
            otherwise, stop = self._block(line)
            if stop[0] != "end":
                raise TemplateError("expected {{end}} after {{else}}", stop[1])
            return (keyword, branches, otherwise)

    def _range(self, tokens: List[Tuple[str, str]], line: int) -> Any:
        self.scopes.append([])
        self.loops += 1
        try:
            pipe = self._pipe(tokens, line, declare_limit=2)
            body, stop = self._list()
        finally:
            self.loops -= 1
            self.scopes.pop()
        if stop is None:
            raise TemplateError("unexpected EOF: missing {{end}}", line)
        otherwise: List[Any] = []
        if stop[0] == "else":
            otherwise, stop = self._block(line)
            if stop[0] != "end":
                raise TemplateError("expected {{end}} after {{else}}", stop[1])
        return ("range", pipe, body, otherwise)

    def _pipe(self, tokens: List[Tuple[str, str]], line: int, declare_limit: int) -> Pipe:
        names: List[str] = []
        assign = False
        for end in range(len(tokens)):
            if tokens[end][0] in ("declare", "="):
                head = tokens[:end]
                names = [t[1] for t in head if t[0] == "variable"]
                separators = [t for t in head if t[0] != "variable"]
                if (not names or len(names) > declare_limit or len(separators) != len(names) - 1
                        or any(t[0] != "," for t in separators)):
                    raise TemplateError("bad variable declaration", line)
                assign = tokens[end][0] == "="
                tokens = tokens[end + 1:]
                break
        if not tokens:
            raise TemplateError("missing value for command", line)
        commands: List[List[Any]] = [[]]
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token[0] == "|":
                if not commands[-1]:
                    raise TemplateError("missing command before '|'", line)
                commands.append([])
                index += 1
                continue
            operand, index = self._operand(tokens, index, line)
            commands[-1].append(operand)
        if not commands[-1]:
            raise TemplateError("missing command after '|'", line)
        if assign:
            for name in names:
                if not any(name in scope for scope in self.scopes):
                    raise TemplateError(f"undefined variable {name}", line)
        else:
            self.scopes[-1].extend(names)
        return names, assign, commands

    def _operand(self, tokens: List[Tuple[str, str]], index: int, line: int) -> Tuple[Any, int]:
        kind, value = tokens[index]
        index += 1
        if kind == "open":
            depth, end = 1, index
            while depth:
                if end >= len(tokens):
                    raise TemplateError("unclosed left paren", line)
                depth += {"open": 1, "close": -1}.get(tokens[end][0], 0)
                end += 1
            term: Any = ("pipe", self._pipe(tokens[index:end - 1], line, declare_limit=0))
            index = end
        elif kind == "field":
            term = ("field", ("dot",), [] if value == "." else value[1:].split("."))
        elif kind == "variable":
            if not any(value in scope for scope in self.scopes):
                raise TemplateError(f"undefined variable {value}", line)
            term = ("var", value)
        elif kind in ("string", "raw", "char"):
            term = ("literal", _unquote(kind, value, line))
        elif kind == "number":
            term = ("literal", _number(value, line))
        elif kind == "ident":
            if value in ("true", "false"):
                term = ("literal", value == "true")
            elif value == "nil":
                term = ("literal", None)
            elif value in self.functions:
                term = ("func", value)
            else:
                raise TemplateError(f'function "{value}" not defined', line)
        else:
            raise TemplateError(f"unexpected {value!r} in operand", line)
        while index < len(tokens) and tokens[index][0] == "chain":
            term = ("field", term, tokens[index][1][1:].split("."))
            index += 1
        return term, index


def _unquote(kind: str, text: str, line: int) -> Any:
    if kind == "raw":
        return text[1:-1]
    try:
        decoded = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        raise TemplateError(f"invalid quoted literal {text}", line) from None
    if kind == "char":
        if len(decoded) != 1:
            raise TemplateError(f"malformed character constant {text}", line)
        return ord(decoded)
    return decoded


def _number(text: str, line: int) -> Any:
    cleaned = text.replace("_", "")
    try:
        if re.search(r"[.eE]", cleaned) and not cleaned.lstrip("+-").lower().startswith("0x"):
            return float(cleaned)
        return int(cleaned, 0) if not re.fullmatch(r"[+-]?0\d+", cleaned) else int(cleaned, 8)
    except ValueError:
        raise TemplateError(f"bad number syntax: {text}", line) from None


# ---------------------------------------------------------------------------------------------
# execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Executor:
    def __init__(self, root: _Values, functions: Mapping[str, Callable]):
        self.root = root
        self.functions = functions
        self.out: List[str] = []

    def run(self, nodes: List[Any], dot: Any, scope: Dict[str, Any]) -> None:
        for node in nodes:
            if node[0] == "text":
                self.out.append(node[1])
                continue
            try:
                self.node(node[:-1], dot, scope)
            except TemplateError:
                raise
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise TemplateError(f"executing template: {e}", node[-1]) from None

    def node(self, node: Any, dot: Any, scope: Dict[str, Any]) -> None:
        kind = node[0]
        if kind == "action":
            value = self.pipe(node[1], dot, scope)
            if not node[1][0]:
                self.out.append(format_value(value))
        elif kind in ("if", "with"):
            self.conditional(node, dot, scope)
        elif kind == "range":
            self.range(node, dot, scope)
        elif kind == "break":
            raise _Break()
        else:
            raise _Continue()

    def conditional(self, node: Any, dot: Any, scope: Dict[str, Any]) -> None:
        keyword, branches, otherwise = node
        for pipe, body in branches:
            inner = dict(scope)
            value = self.pipe(pipe, dot, inner)
            if truth(value):
                self.run(body, value if keyword == "with" else dot, inner)
                return
        self.run(otherwise, dot, dict(scope))

    def range(self, node: Any, dot: Any, scope: Dict[str, Any]) -> None:
        _, pipe, body, otherwise = node
        names, _assign, commands = pipe
        value = self.pipe(([], False, commands), dot, scope)
        if isinstance(value, dict):
            pairs = sorted(value.items())
        elif isinstance(value, (list, tuple)) and not isinstance(value, NumberPair):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is MISSING or value is None:
            pairs = []
        else:
            raise ValueError(f"range can't iterate over {format_value(value)}")
        for key, element in pairs:
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = key, element
            elif names:
                inner[names[0]] = element
            try:
                self.run(body, element, inner)
            except _Break:
                break
            except _Continue:
                continue
        if not pairs:
            self.run(otherwise, dot, dict(scope))

    def pipe(self, pipe: Pipe, dot: Any, scope: Dict[str, Any]) -> Any:
        names, assign, commands = pipe
        value: Any = MISSING
        for i, command in enumerate(commands):
            value = self.command(command, dot, scope, value if i else MISSING, i > 0)
        for name in names:
            scope[name] = value
        return value

    def command(self, operands: List[Any], dot: Any, scope: Dict[str, Any], piped: Any, has_piped: bool) -> Any:
        head = operands[0]
        if head[0] == "func":
            args = [self.evaluate(o, dot, scope) for o in operands[1:]]
            if has_piped:
                args.append(piped)
            name = head[1]
            try:
                return self.functions[name](*args)
            except TypeError:
                raise ValueError(f"wrong number of args for {name}") from None
            except (RangeError, ValueError) as e:
                raise ValueError(f"error calling {name}: {e}") from None
        if len(operands) > 1 or has_piped:
            raise ValueError(f"can't give argument to non-function {_describe(head)}")
        return self.evaluate(head, dot, scope)

    def evaluate(self, operand: Any, dot: Any, scope: Dict[str, Any]) -> Any:
        kind = operand[0]
        if kind == "literal":
            return operand[1]
        if kind == "dot":
            return dot
        if kind == "var":
            return scope[operand[1]]
        if kind == "pipe":
            return self.pipe(operand[1], dot, dict(scope))
        if kind == "func":
            return self.command([operand], dot, scope, MISSING, False)
        value = self.evaluate(operand[1], dot, scope)
        for name in operand[2]:
            value = _field(value, name)
        return value


def _describe(operand: Any) -> str:
    return {"literal": "a constant", "dot": "dot", "var": "a variable", "pipe": "a pipeline"}.get(operand[0], "a field")


_GO_TYPE_NAMES = {str: "string", int: "int", bool: "bool", float: "float64", list: "[]int64"}


def _field(value: Any, name: str) -> Any:
    if value is MISSING:
        return MISSING
    if isinstance(value, _Values):
        if name == "Envs":
            return value.Envs
        raise ValueError(f"can't evaluate field {name} in type *config.Values")
    if isinstance(value, dict):
        return value.get(name, MISSING)
    if isinstance(value, NumberPair) and name in ("First", "Second"):
        return getattr(value, name)
    if value is None:
        raise ValueError(f"nil pointer evaluating interface {{}}.{name}")
    kind = "NumberPair" if isinstance(value, NumberPair) else _GO_TYPE_NAMES.get(type(value), type(value).__name__)
    raise ValueError(f"can't evaluate field {name} in type {kind}")


def render(source: str, env: Mapping[str, str], with_range_functions: bool,
           missing: Optional[List[str]] = None) -> str:
    """Render ``source`` like frp does before parsing a configuration file.

    The names of environment variables used but not set (rendered as ``<no value>``) are
    appended to ``missing``.
    """
    if "{{" not in source:
        return source
    functions = dict(BUILTINS)
    if with_range_functions:
        functions.update(RANGE_FUNCTIONS)
    nodes = _Parser(_split(source), functions).parse()
    executor = _Executor(_Values(env), functions)
    executor.run(nodes, executor.root, {"$": executor.root})
    if missing is not None:
        missing.extend(executor.root.Envs.missing)
    return "".join(executor.out)
