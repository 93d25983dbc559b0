"""The ProxyOwner interface between frps's proxies and the client they belong to.

frps's proxies may use of their client's session only what ``ProxyOwner`` declares (clock, run
id, user, pool count, a work connection, the NewUserConn plugins, writes joined into one).  The real owner (the control
protocol) and the tests' fake must both provide all of it, and no proxy module may reach for
anything else on its owner: a new need is a new member of the interface, declared first.
"""

import os
import re
from typing import Set

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.server import proxy_base
from frptw.server.auth import TokenVerifier
from frptw.server.control_machine import ControlMachine
from frptw.server.control_protocol import ControlProtocol
from frptw.server.plugins import PluginManager
from frptw.server.proxy_base import ProxyOwner
from frptw.wire import messages as m
from tests.fakes import FakeControl

SERVER = os.path.dirname(os.path.abspath(proxy_base.__file__))


def declared() -> Set[str]:
    """The members ``ProxyOwner`` declares."""
    return {name for name in vars(ProxyOwner) if not name.startswith("_")}


class ProxyOwnerTests(SynchronousTestCase):
    def test_the_interface(self) -> None:
        self.assertEqual(declared(), {"clock", "runId", "user", "poolCount", "getWorkConn", "admitUser",
                                      "writesTogether"})

    def test_the_control_protocol_provides_it(self) -> None:
        clock = Clock()
        machine = ControlMachine(m.Login(user="alice", pool_count=2), "0123456789abcdef", TokenVerifier("t"), 0.0)
        owner = ControlProtocol(machine, None, b"k" * 16, clock, 10.0, lambda control: None,
                                PluginManager([], clock, clock))
        self.assertEqual((owner.clock, owner.runId, owner.user, owner.poolCount),
                         (clock, "0123456789abcdef", "alice", 2))
        self.assertIsNone(owner.admitUser("alice.web", "tcp", "127.0.0.1:1"))  # no NewUserConn plugin
        for name in declared():
            self.assertTrue(hasattr(owner, name), name)

    def test_the_fake_provides_it(self) -> None:
        fake = FakeControl(Clock())
        for name in declared():
            self.assertTrue(hasattr(fake, name), name)

    def test_proxies_use_nothing_else_of_their_owner(self) -> None:
        used: Set[str] = set()
        for directory, _, files in os.walk(SERVER):
            for name in files:
                if name.endswith(".py") and name != "control_protocol.py":
                    with open(os.path.join(directory, name), encoding="utf-8") as f:
                        used.update(re.findall(r"\bowner\.([A-Za-z_]\w*)", f.read()))
        self.assertTrue(used, "the scan found no use of an owner")
        self.assertEqual(sorted(used - declared()), [])
