"""The runnable examples in docs/ keep working."""

import importlib.util
import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(relative):
    path = os.path.join(ROOT, relative)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class EmbeddingExampleTests(TestCase):
    timeout = 30

    async def test_embedded_pair(self):
        example = load("docs/examples/embedded_pair.py")
        greeting = await defer.Deferred.fromCoroutine(example.main(reactor))
        self.assertEqual(greeting, b"hello through frp\n")
