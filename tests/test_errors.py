"""One error hierarchy: every exception class frptw defines is an FrpError, and the root is
importable from anywhere (it imports nothing, so the sans-IO wire layer can use it)."""

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import frptw
from frptw import errors
from frptw.errors import FrpError, ProtocolError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frptwModules():
    yield frptw
    for info in pkgutil.walk_packages(frptw.__path__, "frptw."):
        yield importlib.import_module(info.name)


class HierarchyTests(SynchronousTestCase):
    def test_every_exception_class_is_an_frp_error(self) -> None:
        """Or an AssertionError: a bug of frptw itself.  Control-flow exceptions private to a
        module (``_Break``) are not errors."""
        strays = []
        for module in frptwModules():
            for name, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
                        and not name.startswith("_") and not issubclass(value, (FrpError, AssertionError))):
                    strays.append(f"{module.__name__}.{name}")
        self.assertEqual(strays, [])

    def test_protocol_error_is_one_class(self) -> None:
        from frptw.wire import errors as wireErrors

        self.assertIs(wireErrors.ProtocolError, ProtocolError)
        self.assertTrue(issubclass(ProtocolError, FrpError))

    def test_documented_names(self) -> None:
        """docs/embedding.md names every public error class."""
        with open(os.path.join(ROOT, "docs", "embedding.md")) as f:
            doc = f.read()
        self.assertEqual([name for name in errors.__all__ if f"`{name}`" not in doc], [])


class DependencyFreeTests(SynchronousTestCase):
    def test_errors_module_has_no_imports(self) -> None:
        with open(errors.__file__) as f:
            tree = ast.parse(f.read())
        self.assertEqual([node.lineno for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))], [])

    def test_importing_it_loads_nothing_else(self) -> None:
        code = ("import sys, frptw.errors; "
                "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('frptw', 'twisted'))))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.split(), ["frptw", "frptw.errors"])
