"""frps's port allocator: allow_ports, fixed and random ports, frp's error texts, reservations."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ProxyError
from frptw.server.ports import RANDOM_TRIES, RESERVATION_SECONDS, PortAllocator


class _Binder:
    """A fake OS: binds succeed except for ports in ``busy``; records every attempt."""

    def __init__(self, busy=()):
        self.busy = set(busy)
        self.tried = []

    def __call__(self, port):
        self.tried.append(port)
        return None if port in self.busy else f"listener:{port}"


class PortAllocatorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()

    def allocator(self, allowed=((30000, 30009),)):
        return PortAllocator(list(allowed), self.clock, random.Random(7))

    def assertRefused(self, text, allocator, name, port, bind):
        with self.assertRaises(ProxyError) as caught:
            allocator.acquire(name, port, bind)
        self.assertEqual(str(caught.exception), text)

    def test_fixed_allowed_port_is_bound(self):
        a, bind = self.allocator(), _Binder()
        self.assertEqual(a.acquire("p", 30003, bind), (30003, "listener:30003"))
        self.assertEqual(a.used, {30003: "p"})

    def test_fixed_port_outside_allow_ports(self):
        a, bind = self.allocator(), _Binder()
        self.assertRefused("port not allowed", a, "p", 30010, bind)
        self.assertRefused("port not allowed", a, "p", -1, bind)
        self.assertRefused("port not allowed", a, "p", 70000, bind)
        self.assertEqual(bind.tried, [])

    def test_fixed_port_held_by_another_proxy(self):
        a, bind = self.allocator(), _Binder()
        a.acquire("p", 30003, bind)
        self.assertRefused("port already used", a, "q", 30003, bind)

    def test_fixed_port_the_os_refuses(self):
        a = self.allocator()
        self.assertRefused("port unavailable", a, "p", 30003, _Binder(busy={30003}))
        self.assertEqual(a.used, {})

    def test_release_frees_the_port(self):
        a, bind = self.allocator(), _Binder()
        a.acquire("p", 30003, bind)
        a.release(30003)
        self.assertEqual(a.acquire("q", 30003, bind)[0], 30003)

    def test_empty_allow_ports_allows_every_port(self):
        a = PortAllocator([], self.clock)
        self.assertTrue(a.allows(1) and a.allows(65535))
        self.assertFalse(a.allows(0) or a.allows(65536))

    def test_random_port_is_an_allowed_free_one(self):
        a, bind = self.allocator(), _Binder()
        ports = {a.acquire(f"p{i}", 0, bind)[0] for i in range(10)}
        self.assertEqual(ports, set(range(30000, 30010)))
        self.assertRefused("no available port", a, "p10", 0, bind)

    def test_random_port_tries_five_ports_then_gives_up(self):
        a = self.allocator(((30000, 30099),))
        bind = _Binder(busy=range(30000, 30100))
        self.assertRefused("no available port", a, "p", 0, bind)
        self.assertEqual(len(bind.tried), RANDOM_TRIES)
        self.assertEqual(len(set(bind.tried)), RANDOM_TRIES)

    def test_random_port_skips_ports_the_os_refuses(self):
        a = self.allocator(((30000, 30001),))
        port, _ = a.acquire("p", 0, _Binder(busy={30000}))
        self.assertEqual(port, 30001)

    def test_random_port_in_a_huge_range(self):
        a, bind = PortAllocator([], self.clock, random.Random(1)), _Binder()
        port, _ = a.acquire("p", 0, bind)
        self.assertTrue(1 <= port <= 65535)
        self.assertEqual(bind.tried, [port])

    def test_a_proxy_name_gets_its_previous_random_port_back(self):
        a, bind = self.allocator(((30000, 30999),)), _Binder()
        first, _ = a.acquire("p", 0, bind)
        a.release(first)
        self.assertEqual(a.acquire("p", 0, bind)[0], first)

    def test_reserved_port_not_bindable_falls_back_to_random(self):
        a, bind = self.allocator(((30000, 30999),)), _Binder()
        first, _ = a.acquire("p", 0, bind)
        a.release(first)
        second, _ = a.acquire("p", 0, _Binder(busy={first}))
        self.assertNotEqual(second, first)

    def test_reservation_expires_after_a_day(self):
        class HighestFirst(random.Random):
            def sample(self, population, k):
                return sorted(population, reverse=True)[:k]

        a, bind = PortAllocator([(30000, 30001)], self.clock, HighestFirst()), _Binder()
        a.acquire("p", 30000, bind)
        a.release(30000)
        self.clock.advance(RESERVATION_SECONDS - 1)
        self.assertEqual(a.acquire("p", 0, bind)[0], 30000)
        a.release(30000)
        self.clock.advance(RESERVATION_SECONDS + 1)
        self.assertEqual(a.acquire("p", 0, bind)[0], 30001)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from([0, 30000, 30001, 30002, 30005, 29999]),
                              st.booleans()), max_size=40))
    def test_held_ports_stay_unique_and_allowed(self, steps):
        a, bind = PortAllocator([(30000, 30003)], Clock(), random.Random(0)), _Binder(busy={30002})
        held = {}
        for name, port, release in steps:
            if release and name in held:
                a.release(held.pop(name))
                continue
            if name in held:
                continue
            try:
                got, _ = a.acquire(name, port, bind)
            except ProxyError as e:
                self.assertIn(str(e), {"port not allowed", "port already used", "port unavailable",
                                       "no available port"})
                continue
            self.assertNotIn(got, held.values())
            self.assertTrue(30000 <= got <= 30003 and got != 30002)
            held[name] = got
        self.assertEqual(a.used, {port: name for name, port in held.items()})
