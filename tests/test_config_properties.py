"""Property tests: the range/port-list/number parsers, and robustness of every parser on garbage."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.config import parse_client_config, parse_server_config
from frptw.config.goconv import parse_int
from frptw.config.ini import IniSyntaxError, parse_ini, split_list
from frptw.config.ranges import RangeError, parse_port_ranges, parse_range_numbers, parse_range_pairs
from frptw.config.template import TemplateError, render
from frptw.errors import ConfigError

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

spans = st.lists(
    st.tuples(st.integers(0, 70000), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])),
    min_size=1,
    max_size=6,
)
spaces = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def range_text(draw: st.DrawFn) -> tuple:
    items = draw(spans)
    parts = []
    for low, high in items:
        single = low == high and draw(st.booleans())
        pad = draw(spaces), draw(spaces)
        parts.append(f"{pad[0]}{low}{pad[1]}" if single else f"{pad[0]}{low}{draw(spaces)}-{draw(spaces)}{high}{pad[1]}")
    return items, ",".join(parts)


class RangeParserProperties(SynchronousTestCase):
    @FAST
    @given(range_text())
    def test_expansion(self, case: tuple) -> None:
        items, text = case
        expected = [n for low, high in items for n in range(low, high + 1)]
        self.assertEqual(parse_range_numbers(text), expected)

    @FAST
    @given(range_text())
    def test_port_list_is_not_expanded(self, case: tuple) -> None:
        items, text = case
        self.assertEqual(parse_port_ranges(text), items)

    @FAST
    @given(range_text(), range_text())
    def test_pairs(self, first: tuple, second: tuple) -> None:
        a, b = parse_range_numbers(first[1]), parse_range_numbers(second[1])
        if len(a) == len(b):
            self.assertEqual([(p.First, p.Second) for p in parse_range_pairs(first[1], second[1])], list(zip(a, b)))
        else:
            self.assertRaises(RangeError, parse_range_pairs, first[1], second[1])

    @FAST
    @given(st.text(alphabet="0123456789-, +_x\t", max_size=20))
    def test_garbage_is_a_range_error_or_a_list(self, text: str) -> None:
        try:
            numbers = parse_range_numbers(text)
        except RangeError:
            return
        self.assertIsInstance(numbers, list)
        self.assertEqual(len(parse_port_ranges(text)), text.count(",") + 1)

    @FAST
    @given(st.integers(-(1 << 63), (1 << 63) - 1), st.sampled_from(["{}", "{:#x}", "{:#o}", "{:#b}", "0{:o}"]))
    def test_go_base0_integers(self, number: int, form: str) -> None:
        sign, magnitude = ("-" if number < 0 else ""), abs(number)
        if form == "0{:o}" and magnitude == 0:
            form = "{}"
        self.assertEqual(parse_int(sign + form.format(magnitude), 0), number)

    @FAST
    @given(st.lists(st.text(alphabet=st.characters(blacklist_characters=",\\", blacklist_categories=("Cs",)), min_size=1).map(str.strip).filter(bool), min_size=1, max_size=5))
    def test_ini_list_round_trip(self, items: list) -> None:
        self.assertEqual(split_list(" , ".join(items)), items)


ini_pieces = st.sampled_from(
    [
        "[common]\n", "[ssh]\n", "[range:r]\n", "[plugin.p]\n", "[a.b]\n", "[", "]", "=", ":", "#", ";", "`", '"""', '"', "'",
        "\\\n", "\n", " ", "type = ", "tcp", "http", "visitor", "role = ", "local_port = ", "remote_port = ", "6000-6002",
        "70000", "abc", "plugin = ", "plugin_unix_path = /x", "%(local_port)s", "{{ .Envs.X }}", "{{", "}}", "bind_port = ",
        "includes = /nonexistent/*.ini\n", "start = ssh\n", "bandwidth_limit = 1MB\n", "\r", "\t", "é", "\x00",
    ]
)
ini_text = st.lists(ini_pieces, max_size=40).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "type", "proxies", "visitors", "localPort", "transport", "plugin", "serverPort",
                         "bindPort", "allowPorts", "start", "x", "auth", "tls", "webServer", "httpPlugins"]) | st.text(max_size=5),
        children,
        max_size=5,
    ),
    max_leaves=25,
)


class ParserRobustness(SynchronousTestCase):
    """Whatever the input, loading ends in a config or a one-line ConfigError, never another exception."""

    def load(self, text: str, fmt, role: str) -> None:
        parse = parse_client_config if role == "frpc" else parse_server_config
        try:
            config = parse(text, fmt, "garbage", env={})
        except ConfigError as e:
            self.assertEqual(len(str(e).splitlines()), 1, str(e))
            return
        self.assertIsInstance(config.warnings, list)

    @FAST
    @given(ini_text, st.sampled_from([None, "ini"]), st.sampled_from(["frpc", "frps"]))
    def test_ini_garbage(self, text: str, fmt, role: str) -> None:
        self.load(text, fmt, role)

    @FAST
    @given(ini_text)
    def test_ini_parser_garbage(self, text: str) -> None:
        try:
            parse_ini(text)
        except IniSyntaxError as e:
            self.assertGreaterEqual(e.line, 1)

    @FAST
    @given(json_values, st.sampled_from(["frpc", "frps"]))
    def test_json_documents(self, value, role: str) -> None:
        self.load(json.dumps(value), "json", role)
        self.load(json.dumps({"proxies": [value], "visitors": [value]}), None, role)

    @FAST
    @given(st.text(max_size=80), st.sampled_from([None, "toml", "yaml", "json"]))
    def test_text_garbage(self, text: str, fmt) -> None:
        self.load(text, fmt, "frpc")

    @FAST
    @given(st.lists(st.sampled_from(["{{", "}}", "{{-", "-}}", " ", ".Envs.A", ".X", "$v", ":=", "range", "if", "end",
                                     "else", "(", ")", "|", '"s"', "1", "eq", "printf", "parseNumberRange", "/*", "*/", "x"]),
                    max_size=20).map("".join))
    def test_template_garbage(self, text: str) -> None:
        try:
            self.assertIsInstance(render(text, {"A": "a"}, with_range_functions=True), str)
        except TemplateError:
            pass
