"""The configuration corpus (tests/configs, see :mod:`tests.corpus`) and the examples: our
verdict for every file.  tests/test_config_parity.py checks the same verdicts against the real
binaries.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import load_config
from tests.corpus import CORPUS_ENV, EXAMPLES, Case, add_case_tests, corpus, examples, our_verdict


class CorpusShapeTests(SynchronousTestCase):
    def test_size_and_coverage(self) -> None:
        """At least 50 files, every format and both programs, accepted and refused ones."""
        cases = corpus()
        self.assertGreaterEqual(len(cases), 50)
        for role in ("frpc", "frps"):
            for ext in (".ini", ".toml", ".yaml", ".json"):
                self.assertTrue(any(c.role == role and c.path.endswith(ext) for c in cases), (role, ext))
        self.assertEqual({c.accepted for c in cases}, {True, False})

    def test_every_proxy_and_visitor_type_is_accepted_somewhere(self) -> None:
        for case in (c for c in corpus() if c.role == "frpc" and "all-proxy-types" in c.path):
            config = load_config(case.path, role="frpc", env=CORPUS_ENV)
            self.assertEqual({p.type for p in config.proxies}, {"tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp"})
        visitor_types = set()
        for case in (c for c in corpus() if c.role == "frpc" and c.accepted):
            visitor_types |= {v.type for v in load_config(case.path, role="frpc", strict=case.strict, env=CORPUS_ENV).visitors}
        self.assertEqual(visitor_types, {"stcp", "sudp", "xtcp"})


class CorpusVerdictTests(SynchronousTestCase):
    """Our verdict for each corpus file is the one its name records."""


add_case_tests(CorpusVerdictTests, iter(corpus()), lambda self, case: self.assertEqual(our_verdict(case), case.accepted))


class ExampleTests(SynchronousTestCase):
    """Every example passes our verify, with no warning (they are meant to be copied)."""


def _check_example(self: SynchronousTestCase, case: Case) -> None:
    config = load_config(case.path, env={})
    self.assertEqual(config.warnings, [])
    self.assertEqual("frpc" if hasattr(config, "proxies") else "frps", case.role)


add_case_tests(ExampleTests, iter(examples()), _check_example)


class QuickStartTests(SynchronousTestCase):
    def test_examples_pair_up_on_loopback(self) -> None:
        """frpc.ini/frpc.toml reach the frps.ini/frps.toml listener, with the same token."""
        for ext in ("ini", "toml"):
            server = load_config(os.path.join(EXAMPLES, f"frps.{ext}"), "frps", env={})
            client = load_config(os.path.join(EXAMPLES, f"frpc.{ext}"), "frpc", env={})
            self.assertEqual((client.server_addr, client.server_port), (server.bind_addr, server.bind_port))
            self.assertEqual(client.server_addr, "127.0.0.1")
            self.assertEqual(client.auth.token, server.auth.token)
            self.assertEqual([p.type for p in client.proxies], ["tcp"])
            self.assertTrue(server.port_allowed(client.proxies[0].remote_port))
