"""The Twisted TLS internals that frptw.transport.tls overrides, checked against the installed
Twisted: a Twisted upgrade that renames, re-signs or stops calling them fails here, naming the
piece, before it shows up as a slow or broken TLS connection.  setup.py's bounds on twisted are
checked against the installed version too (see the module docstring of frptw.transport.tls)."""

import inspect
import os
import re
from typing import List

import twisted
from twisted.internet.testing import StringTransport
from twisted.protocols import tls as twistedTLS
from twisted.trial.unittest import SynchronousTestCase

from frptw.transport import tls
from frptw.transport.switch import SwitchableProtocol
from tests.support import pumpStrings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: method -> parameter names (after self) that tls.py's override and its calls rely on.
OVERRIDDEN = {"_flushSendBIO": [], "_write": ["bytes"], "_flushReceiveBIO": []}
CALLED = {"_bufferedWrite": ["octets"], "_tlsShutdownFinished": ["reason"], "_shutdownTLS": []}
#: attributes of a connected TLSMemoryBIOProtocol that the overrides read.
ATTRIBUTES = ["_tlsConnection", "_lostTLSConnection", "_aborted"]


def parameters(function) -> List[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


class Collector(SwitchableProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: List[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)


class InternalsTests(SynchronousTestCase):
    def test_the_base_class_and_factory_exist(self) -> None:
        self.assertEqual(parameters(twistedTLS.TLSMemoryBIOFactory.__init__),
                         ["contextFactory", "isClient", "wrappedFactory", "clock"])
        self.assertEqual(parameters(twistedTLS.TLSMemoryBIOProtocol.__init__),
                         ["factory", "wrappedProtocol", "_connectWrapped"])
        self.assertEqual(parameters(twistedTLS.TLSMemoryBIOProtocol.write), ["bytes"])

    def test_overridden_and_called_methods_keep_their_signatures(self) -> None:
        for name, expected in {**OVERRIDDEN, **CALLED}.items():
            method = getattr(twistedTLS.TLSMemoryBIOProtocol, name, None)
            self.assertIsNotNone(method, f"twisted.protocols.tls lost {name}, which frptw.transport.tls relies on")
            self.assertEqual(parameters(method), expected, f"{name} changed its signature")

    def test_twisted_calls_the_overrides(self) -> None:
        """A handshake, a write each way and a close go through each overridden method and
        deliver through ours: their names are still the ones Twisted's own code calls."""
        calls = {name: 0 for name in OVERRIDDEN}
        for name in OVERRIDDEN:
            original = getattr(tls._BatchingTLSTransport, name)

            def counting(self, *args, _name=name, _original=original):
                calls[_name] += 1
                return _original(self, *args)

            self.patch(tls._BatchingTLSTransport, name, counting)
        clientRaw, serverRaw = SwitchableProtocol(), SwitchableProtocol()
        clientWire, serverWire = StringTransport(), StringTransport()
        clientRaw.makeConnection(clientWire)
        serverRaw.makeConnection(serverWire)
        client, server = Collector(), Collector()
        clientTLS = tls.startClientTLS(clientRaw, tls.clientContextFactory("frps.test"), False)
        clientTLS.switchTo(client)
        tls.startServerTLS(serverRaw, tls.serverContextFactory(), b"").switchTo(server)
        pumpStrings(clientRaw, clientWire, serverRaw, serverWire, rounds=50)
        layer = clientRaw.switchedTo
        self.assertIsInstance(layer, tls._BatchingTLSTransport)
        for name in ATTRIBUTES:
            self.assertTrue(hasattr(layer, name), f"TLSMemoryBIOProtocol lost the attribute {name}")
        client.transport.write(b"x" * 70000)
        pumpStrings(clientRaw, clientWire, serverRaw, serverWire, rounds=50)
        self.assertEqual(b"".join(server.chunks), b"x" * 70000)
        self.assertEqual({name for name, count in calls.items() if count == 0}, set())


class BoundsTests(SynchronousTestCase):
    def test_installed_twisted_is_within_setup_py_bounds(self) -> None:
        with open(os.path.join(ROOT, "setup.py")) as f:
            [requirement] = re.findall(r'"twisted(>=[^"]*)"', f.read())
        [(low, high)] = re.findall(r">=([\d.]+),<([\d.]+)", requirement)

        def version(text: str) -> tuple:
            return tuple(int(part) for part in text.split(".")[:2])

        installed = version(twisted.__version__)
        self.assertTrue(version(low) <= installed < version(high),
                        f"Twisted {twisted.__version__} is outside setup.py's twisted{requirement}")
