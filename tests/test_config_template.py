"""Go text/template rendering of configuration files (``{{ .Envs.NAME }}`` and friends)."""

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import parse_client_config
from frptw.config.template import TemplateError, render
from frptw.errors import ConfigError

ENV = {"HOME": "/root", "PORT": "6000"}


def v1(text: str) -> str:
    return render(text, ENV, with_range_functions=True)


class EnvTests(SynchronousTestCase):
    def test_env_and_missing_env(self) -> None:
        missing: list = []
        out = render("a={{ .Envs.HOME }} b={{ .Envs.NOPE }} c={{ .Envs.NOPE.Deeper }}", ENV, False, missing)
        self.assertEqual(out, "a=/root b=<no value> c=<no value>")
        self.assertEqual(missing, ["NOPE"])

    def test_without_actions_the_text_is_unchanged(self) -> None:
        text = "[common]\ntoken = {not a template}\n"
        self.assertIs(render(text, ENV, False), text)

    def test_unknown_field_of_the_root(self) -> None:
        with self.assertRaises(TemplateError) as caught:
            render("x\n{{ .Foo }}", ENV, False)
        self.assertEqual(caught.exception.line, 2)
        self.assertIn("can't evaluate field Foo", str(caught.exception))

    def test_field_of_a_string(self) -> None:
        self.assertRaises(TemplateError, render, "{{ .Envs.HOME.Foo }}", ENV, False)

    def test_missing_variable_warns_when_loading(self) -> None:
        config = parse_client_config('user = "{{ .Envs.FRPTW_NOT_SET }}"\n', "toml", env={})
        self.assertEqual(config.user, "<no value>")
        self.assertTrue(any("FRPTW_NOT_SET is not set" in w for w in config.warnings))


class RangeFunctionTests(SynchronousTestCase):
    def test_parse_number_range_pair(self) -> None:
        text = (
            '{{- range $_, $v := parseNumberRangePair "6000-6001,6005" "7000-7002" }}\n'
            "p{{ $v.First }}={{ $v.Second }}\n{{- end }}"
        )
        self.assertEqual(v1(text), "\np6000=7000\np6001=7001\np6005=7002")

    def test_parse_number_range(self) -> None:
        self.assertEqual(v1('{{ range $i, $p := parseNumberRange "1-3" }}{{ $i }}:{{ $p }} {{ end }}'), "0:1 1:2 2:3 ")

    def test_unpaired_ranges(self) -> None:
        with self.assertRaises(TemplateError) as caught:
            v1('{{ range $v := parseNumberRangePair "1-2" "1" }}{{ end }}')
        self.assertIn("not in pairs", str(caught.exception))

    def test_a_number_where_a_range_string_belongs(self) -> None:
        """Go's reflect call refuses the argument before frp's function runs (found by bench/fuzz.py)."""
        for text, got in (('parseNumberRangePair "1-2" 9', "int"), ("parseNumberRange true", "bool")):
            with self.assertRaises(TemplateError) as caught:
                v1("{{ range $v := %s }}{{ end }}" % text)
            self.assertIn(f"wrong type for value; expected string; got {got}", str(caught.exception))

    def test_not_available_in_ini(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_client_config('[common]\nuser = {{ parseNumberRange "1" }}\n', None, "frpc.ini", env={})
        self.assertIn('function "parseNumberRange" not defined', str(caught.exception))

    def test_generates_proxies(self) -> None:
        text = (
            '{{- range $_, $v := parseNumberRangePair "6000-6001" "7000-7001" }}\n[[proxies]]\n'
            'name = "tcp-{{ $v.First }}"\ntype = "tcp"\nlocalPort = {{ $v.First }}\nremotePort = {{ $v.Second }}\n{{- end }}\n'
        )
        config = parse_client_config(text, "toml", env={})
        self.assertEqual([(p.name, p.local_port, p.remote_port) for p in config.proxies],
                         [("tcp-6000", 6000, 7000), ("tcp-6001", 6001, 7001)])


class LanguageTests(SynchronousTestCase):
    def test_conditionals_and_builtins(self) -> None:
        self.assertEqual(v1('{{ if eq .Envs.HOME "/root" }}root{{ else if .Envs.X }}x{{ else }}other{{ end }}'), "root")
        self.assertEqual(v1('{{ with .Envs.NOPE }}set{{ else }}unset{{ end }}'), "unset")
        self.assertEqual(v1('{{ index .Envs "PORT" }}|{{ len .Envs.HOME }}|{{ not true }}'), "6000|5|false")
        self.assertEqual(v1('{{ printf "%s:%d" .Envs.HOME 22 }}'), "/root:22")
        self.assertEqual(v1('{{ .Envs.HOME | printf "[%s]" }}'), "[/root]")
        self.assertEqual(v1('{{ $x := "v" }}{{ $x }}{{ $x = "w" }}{{ $x }}'), "vw")

    def test_trimming_and_comments(self) -> None:
        self.assertEqual(v1("a  {{- 1 -}}  b {{/* note */}}c"), "a1b c")

    def test_break_and_continue(self) -> None:
        text = '{{ range $p := parseNumberRange "1-5" }}{{ if eq $p 2 }}{{ continue }}{{ end }}{{ if eq $p 4 }}{{ break }}{{ end }}{{ $p }}{{ end }}'
        self.assertEqual(v1(text), "13")

    def test_parse_errors(self) -> None:
        for text in ("{{ .Envs.HOME", "{{ if true }}x", "{{ end }}", "{{ nosuchfunc }}", "{{ $undefined }}", "{{}}",
                     '{{ template "x" }}', "{{ 1 2 }}"):
            self.assertRaises(TemplateError, v1, text)
