"""The vhost route table (wire-protocol.md §10.1) and frp's domain rules for NewProxy."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ProxyError
from frptw.server.vhost.http import HTTPVhost
from frptw.server.vhost.http_proxy import HTTPProxy
from frptw.server.vhost.https import HTTPSProxy, HTTPSVhost
from frptw.server.vhost.routes import (
    RouteConflict,
    RouteTable,
    candidate_hosts,
    canonical_addr,
    canonical_host,
    proxy_domains,
)
from frptw.wire.messages import NewProxy
from tests.fakes import FakeControl


class CanonicalHostTests(SynchronousTestCase):
    def test_lower_port_dot(self) -> None:
        self.assertEqual(canonical_host("A.Test:31780"), "a.test")
        self.assertEqual(canonical_host("a.test."), "a.test")
        self.assertEqual(canonical_host("a.test.:80"), "a.test")
        self.assertEqual(canonical_host("[::1]:8080"), "::1")
        self.assertEqual(canonical_host("::1"), "::1")

    def test_candidates(self) -> None:
        self.assertEqual(candidate_hosts("a.b.example.com"),
                         ["a.b.example.com", "*.b.example.com", "*.example.com", "*"])
        self.assertEqual(candidate_hosts("example.com"), ["example.com", "*"])
        self.assertEqual(candidate_hosts("*"), ["*"])


class RouteTableTests(SynchronousTestCase):
    def test_verified_locations(self) -> None:
        """The 0.65 observation of §10.1: longest prefix wins, host case-insensitive."""
        table: RouteTable[str] = RouteTable()
        table.add(["a.test"], ["/", "/api"], "", "h1")
        table.add(["a.test"], ["/api/v2"], "", "h3")
        self.assertEqual(table.lookup("a.test", "/api/v2/z", ""), "h3")
        self.assertEqual(table.lookup("a.test", "/api/v1", ""), "h1")
        self.assertEqual(table.lookup("A.test:31780", "/x", ""), "h1")
        self.assertIsNone(table.lookup("b.test", "/x", ""))

    def test_plain_prefix(self) -> None:
        table: RouteTable[str] = RouteTable()
        table.add(["a.test"], ["/api"], "", "api")
        self.assertEqual(table.lookup("a.test", "/apix", ""), "api")
        self.assertIsNone(table.lookup("a.test", "/ap", ""))

    def test_wildcards_and_catch_all(self) -> None:
        table: RouteTable[str] = RouteTable()
        table.add(["*.example.com"], [], "", "wild")
        table.add(["*.b.example.com"], [], "", "deeper")
        table.add(["*"], [], "", "all")
        self.assertEqual(table.lookup("x.example.com", "/", ""), "wild")
        self.assertEqual(table.lookup("a.b.example.com", "/", ""), "deeper")
        self.assertEqual(table.lookup("a.c.example.com", "/", ""), "wild")
        self.assertEqual(table.lookup("example.com", "/", ""), "all")
        self.assertEqual(table.lookup("", "/", ""), "all")

    def test_route_user_first_then_empty(self) -> None:
        table: RouteTable[str] = RouteTable()
        table.add(["a.test"], ["/"], "bob", "bob")
        table.add(["a.test"], ["/"], "", "anyone")
        table.add(["a.test"], ["/private"], "", "private")
        self.assertEqual(table.lookup("a.test", "/", "bob"), "bob")
        self.assertEqual(table.lookup("a.test", "/", "alice"), "anyone")
        self.assertEqual(table.lookup("a.test", "/", ""), "anyone")
        # bob's own routes only cover "/"; a longer location of the empty user does not beat it
        self.assertEqual(table.lookup("a.test", "/private", "bob"), "bob")

    def test_user_routes_of_exact_host_beat_wildcard(self) -> None:
        table: RouteTable[str] = RouteTable()
        table.add(["*.test"], [], "bob", "wild-bob")
        table.add(["a.b.test"], [], "", "exact")
        self.assertEqual(table.lookup("a.b.test", "/", "bob"), "exact")

    def test_conflict_is_all_or_nothing(self) -> None:
        table: RouteTable[str] = RouteTable()
        table.add(["a.test"], ["/x"], "", "one")
        with self.assertRaises(RouteConflict) as caught:
            table.add(["b.test", "A.TEST"], ["/x"], "", "two")
        self.assertEqual(str(caught.exception), "router config conflict")
        self.assertIsInstance(caught.exception, ProxyError)
        self.assertIsNone(table.lookup("b.test", "/x", ""))
        # another user or location is no conflict
        table.add(["a.test"], ["/x"], "bob", "three")
        table.add(["a.test"], ["/y"], "", "four")
        self.assertEqual(len(table), 3)

    def test_duplicate_within_one_add(self) -> None:
        table: RouteTable[str] = RouteTable()
        self.assertRaises(RouteConflict, table.add, ["a.test", "a.test"], [], "", "one")
        self.assertEqual(len(table), 0)

    def test_remove(self) -> None:
        table: RouteTable[object] = RouteTable()
        one, two = object(), object()
        table.add(["a.test", "b.test"], ["/", "/x"], "", one)
        table.add(["a.test"], ["/y"], "", two)
        table.remove(one)
        self.assertIsNone(table.lookup("b.test", "/", ""))
        self.assertIs(table.lookup("a.test", "/y", ""), two)
        self.assertEqual(len(table), 1)
        table.add(["a.test", "b.test"], ["/", "/x"], "", one)  # free again
        table.remove(two)
        table.remove(two)
        self.assertEqual(len(table), 4)


def _reference(routes, host, path, user):
    """Brute force over the registered routes in the documented order."""
    host = canonical_host(host)
    for candidate in candidate_hosts(host):
        for who in ([user, ""] if user else [""]):
            matches = [(loc, t) for (d, loc, u, t) in routes if d == candidate and u == who and path.startswith(loc)]
            if matches:
                return max(matches, key=lambda m: m[0].encode())[1]
    return None


_label = st.sampled_from(["a", "b", "x", "example", "com", "*"])
_domain = st.lists(_label, min_size=1, max_size=4).map(".".join)
_location = st.sampled_from(["", "/", "/a", "/ab", "/a/b", "/b"])
_user = st.sampled_from(["", "bob", "alice"])


class RouteTableProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.tuples(_domain, _location, _user), max_size=12),
        st.lists(st.tuples(_domain, st.sampled_from(["", "/", "/a", "/abc", "/a/b/c", "/b", "/c"]), _user),
                 max_size=10),
    )
    def test_matches_reference(self, wanted, queries) -> None:
        table: RouteTable[int] = RouteTable()
        routes = []
        for index, (domain, location, user) in enumerate(wanted):
            try:
                table.add([domain], [location], user, index)
            except RouteConflict:
                self.assertIn((domain, location, user), [(d, l, u) for d, l, u, _ in routes])
                continue
            routes.append((domain, location, user, index))
        for host, path, user in queries:
            self.assertEqual(table.lookup(host, path, user), _reference(routes, host, path, user))

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40), st.text(max_size=20), st.text(max_size=8))
    def test_lookup_never_raises(self, host, path, user) -> None:
        table: RouteTable[str] = RouteTable()
        table.add(["*"], ["/"], "", "all")
        result = table.lookup(host, path, user)
        self.assertEqual(result, "all" if path.startswith("/") else None)


class ProxyDomainsTests(SynchronousTestCase):
    def test_custom_and_subdomain(self) -> None:
        request = NewProxy(proxy_type="http", custom_domains=["a.test", "", "B.test"], subdomain="web")
        self.assertEqual(proxy_domains(request, "example.com"), ["a.test", "B.test", "web.example.com"])

    def test_errors(self) -> None:
        cases = [
            (NewProxy(subdomain="web"), "", "subdomain is not supported because this feature is not enabled in server"),
            (NewProxy(subdomain="w.b"), "example.com", "'.' and '*' are not supported in subdomain"),
            (NewProxy(subdomain="*"), "example.com", "'.' and '*' are not supported in subdomain"),
            (NewProxy(custom_domains=["x.example.com"]), "example.com",
             "custom domain [x.example.com] should not belong to subdomain host [example.com]"),
            (NewProxy(custom_domains=["example.com.evil.org"]), "example.com",  # verified on 0.65
             "custom domain [example.com.evil.org] should not belong to subdomain host [example.com]"),
        ]
        for request, host, text in cases:
            with self.assertRaises(ProxyError) as caught:
                proxy_domains(request, host)
            self.assertEqual(str(caught.exception), text)

    def test_subdomain_host_itself_is_allowed(self) -> None:
        self.assertEqual(proxy_domains(NewProxy(custom_domains=["example.com"]), "example.com"), ["example.com"])
        self.assertEqual(proxy_domains(NewProxy(custom_domains=["x.other.com"]), "example.com"), ["x.other.com"])
        # frp 0.65 tests a case-sensitive substring: verified with the real frps
        self.assertEqual(proxy_domains(NewProxy(custom_domains=["x.Example.com"]), "example.com"), ["x.Example.com"])


class CanonicalAddrTests(SynchronousTestCase):
    def test_standard_ports_are_left_out_whichever_vhost(self) -> None:
        """The real frps 0.65 answers ``a.test`` for an http proxy on vhost port 443 or 80 and
        ``a.test:8443`` on 8443 (observed with frptw's frpc against it)."""
        self.assertEqual([canonical_addr("a.test", port) for port in (80, 443, 8080, 8443)],
                         ["a.test", "a.test", "a.test:8080", "a.test:8443"])

    def test_http_and_https_proxies_report_alike(self) -> None:
        clock = Clock()
        for port in (443, 8443):
            owner = FakeControl(clock)
            http = HTTPProxy(owner, NewProxy(proxy_name="h", proxy_type="http", custom_domains=["a.test"]), b"k" * 16,
                             HTTPVhost(clock, port, ""))
            https = HTTPSProxy(owner, NewProxy(proxy_name="s", proxy_type="https", custom_domains=["a.test"]), b"k" * 16,
                               HTTPSVhost(clock, port), "")
            self.assertEqual(http.remote_addr, https.remote_addr)
