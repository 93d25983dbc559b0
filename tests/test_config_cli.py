"""``frptw verify``: exit status, one-line messages, never a traceback."""

import io
import os
import subprocess
import sys
from typing import List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from frptw import cli
from tests.corpus import CONFIGS, EXAMPLES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The acceptance cases of the brief, each with the start of the one-line error.
BAD = [
    ("frpc/bad-unknown-proxy-type.ini", 'bad-unknown-proxy-type.ini [ssh] type: unknown proxy type "foo"'),
    ("frpc/bad-port-too-large.ini", "bad-port-too-large.ini [ssh] local_port: 70000 is not a port number"),
    ("frpc/bad-unknown-key.toml", 'bad-unknown-key.toml: unknown key "serverPortt"'),
    ("frpc/bad-toml-syntax.toml", "bad-toml-syntax.toml line 1: TOML syntax error"),
    ("frpc/bad-no-common.ini", "bad-no-common.ini: this looks like INI but has no [common] section"),
    ("frpc/bad-boolean-key-not-ini.ini", "bad-boolean-key-not-ini.ini line 4: INI syntax error: no '=' or ':'"),
    ("frps/bad-bind-port.ini", "bad-bind-port.ini [common] bind_port: 70000 is not a port number"),
]

#: Files frp accepts although they are probably wrong, and the warning we add.
ODD = [
    ("frpc/ok-duplicate-sections.ini", "[ssh] appears again at line 8"),
    ("frpc/ok-duplicate-names.toml", 'proxy "ssh" name: 2 proxy entries share this name'),
    ("frpc/ok-missing-local-port.ini", "[ssh] local_port: not set"),
    ("frpc/ok-non-numeric-value.ini", '[common] server_port: "abc" is not an integer'),
]


def run_main(argv: List[str]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = cli.main(argv)
    finally:
        sys.stdout, sys.stderr = real
    return status, out.getvalue(), err.getvalue()


class MainTests(SynchronousTestCase):
    def setUp(self) -> None:
        for name, value in (("FRPTW_CONFIGS", CONFIGS), ("FRPTW_TEST_TOKEN", "secret")):
            previous = os.environ.get(name)
            os.environ[name] = value
            self.addCleanup(self._restore, name, previous)

    @staticmethod
    def _restore(name: str, value: object) -> None:
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value  # type: ignore[assignment]

    def test_ok(self) -> None:
        path = os.path.join(EXAMPLES, "frpc.ini")
        self.assertEqual(run_main(["verify", "--config", path]), (0, f"{path}: syntax is ok\n", ""))

    def test_bad_cases(self) -> None:
        for name, start in BAD:
            path = os.path.join(CONFIGS, name)
            role = name.split("/")[0]
            status, out, err = run_main(["verify", "--config", path, "--role", role])
            self.assertEqual((status, out), (1, ""), name)
            self.assertEqual(err.count("\n"), 1, err)
            self.assertIn(start, err)

    def test_warnings_go_to_stderr(self) -> None:
        for name, warning in ODD:
            status, out, err = run_main(["verify", "-c", os.path.join(CONFIGS, name), "--role", "frpc"])
            self.assertEqual(status, 0)
            self.assertTrue(out.endswith("syntax is ok\n"))
            self.assertIn(warning, err)
            self.assertTrue(all(line.startswith("warning: ") for line in err.splitlines()))

    def test_role_is_detected(self) -> None:
        status, out, err = run_main(["verify", "--config", os.path.join(EXAMPLES, "frps-vhost.toml")])
        self.assertEqual((status, err), (0, ""))

    def test_no_strict_config(self) -> None:
        path = os.path.join(CONFIGS, "frpc", "bad-unknown-key.toml")
        status, _, err = run_main(["verify", "-c", path, "--no-strict-config", "--role", "frpc"])
        self.assertEqual(status, 0)
        self.assertIn("unknown key 'serverPortt' ignored", err)

    def test_unreadable(self) -> None:
        for path in (os.path.join(CONFIGS, "missing.toml"), CONFIGS):
            status, out, err = run_main(["verify", "--config", path])
            self.assertEqual((status, out), (1, ""))
            self.assertEqual(err.count("\n"), 1)
            self.assertIn("cannot read the file", err)


class SubprocessTests(SynchronousTestCase):
    """``python -m frptw.cli`` as a user runs it: no traceback, whatever the file."""

    def run_cli(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=ROOT, FRPTW_CONFIGS=CONFIGS, FRPTW_TEST_TOKEN="secret")
        return subprocess.run([sys.executable, "-m", "frptw.cli", *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)

    def test_bad_file(self) -> None:
        result = self.run_cli("verify", "--config", os.path.join(CONFIGS, "frpc", "bad-toml-syntax.toml"))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_binary_garbage(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(bytes(range(256)) * 4)
        result = self.run_cli("verify", "--config", path)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_good_file(self) -> None:
        path = os.path.join(EXAMPLES, "frps.toml")
        result = self.run_cli("verify", "--config", path)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, f"{path}: syntax is ok\n", ""))
