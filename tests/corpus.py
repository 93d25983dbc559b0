"""The configuration corpus (tests/configs) and the examples, as cases for verdict tests.

Corpus files are named ``ok-*`` (frp 0.65 accepts them) or ``bad-*`` (it refuses them), under
``frpc/`` or ``frps/`` for the program that checks them; ``.nonstrict.`` in a name means
``--strict-config=false``.  Templates in the corpus use ``FRPTW_CONFIGS`` (this directory, for
``includes``) and ``FRPTW_TEST_TOKEN`` from :data:`CORPUS_ENV`; ``FRPTW_TEST_UNSET_VARIABLE`` must
stay unset.  Used by test_config_corpus (our verdict), test_config_parity (the real binaries'
verdict) and test_config_cli.
"""

import os
from typing import Callable, Iterator, List, NamedTuple

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import load_config
from frptw.errors import ConfigError

TESTS = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(TESTS, "configs")
EXAMPLES = os.path.join(os.path.dirname(TESTS), "examples")
CORPUS_ENV = {"FRPTW_CONFIGS": CONFIGS, "FRPTW_TEST_TOKEN": "secret"}


class Case(NamedTuple):
    path: str
    role: str
    strict: bool
    accepted: bool

    @property
    def test_name(self) -> str:
        stem = os.path.relpath(self.path, os.path.dirname(TESTS))
        return "test_" + "".join(c if c.isalnum() else "_" for c in stem)


def corpus() -> List[Case]:
    cases = []
    for role in ("frpc", "frps"):
        directory = os.path.join(CONFIGS, role)
        for name in sorted(os.listdir(directory)):
            cases.append(Case(os.path.join(directory, name), role, ".nonstrict." not in name, name.startswith("ok-")))
    return cases


def examples() -> List[Case]:
    return [
        Case(os.path.join(EXAMPLES, name), "frps" if name.startswith("frps") else "frpc", True, True)
        for name in sorted(os.listdir(EXAMPLES))
    ]


def add_case_tests(cls: type, cases: Iterator[Case], check: Callable[[SynchronousTestCase, Case], None]) -> None:
    """One test method per case, so a failure names the file."""
    for case in cases:
        setattr(cls, case.test_name, lambda self, case=case: check(self, case))


def our_verdict(case: Case) -> bool:
    try:
        load_config(case.path, role=case.role, strict=case.strict, env=CORPUS_ENV)
    except ConfigError:
        return False
    return True
