"""Micro-benchmark of frps's HTTP vhost hot path: one keep-alive request through an exchange.

No sockets and no reactor: a user connection and one reused work connection on
StringTransports, driven like ``bench_http``'s load (a GET with wrk's head, a 1 KiB response
with Content-Length), so the figure is the CPU frps spends per request in the vhost itself
(parsing, routing, rewriting, the exchange, the pool), without the carrier (yamux, TLS) or
the kernel.  ``--profile`` prints the top of a cProfile run, the Python calls per request (a figure the
machine's load does not change) and h11's share.

    python bench/bench_vhost_exchange.py                   # µs per request, best of 5
    python bench/bench_vhost_exchange.py --profile         # where it goes
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.defer import succeed  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from frptw.server.vhost.http import HTTPVhost  # noqa: E402
from frptw.server.vhost.http_proxy import HTTPProxy  # noqa: E402
from frptw.transport.switch import SwitchableProtocol  # noqa: E402
from frptw.wire.messages import NewProxy  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"  # what wrk sends
#: A head as real servers write it: with Date (RFC 9110 6.6.1), which frps, like Go, adds when missing.
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: bench\r\nDate: Fri, 04 Dec 2026 09:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024)


class _Owner:
    """The proxy owner: one work connection on a StringTransport, handed out at once."""

    runId = "bench"
    user = ""
    poolCount = 0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.works = []

    def getWorkConn(self):
        work = SwitchableProtocol()
        work.makeConnection(StringTransport())
        self.works.append(work)
        return succeed(work)


def setup():
    clock = Clock()
    vhost = HTTPVhost(clock, 8080)
    owner = _Owner(clock)
    HTTPProxy(owner, NewProxy(proxy_name="web", proxy_type="http", custom_domains=["bench.test"]), b"k" * 16,
              vhost)
    user = vhost.buildProtocol(None)
    userTransport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555))
    user.makeConnection(userTransport)
    user.dataReceived(REQUEST)  # the first request dials the work connection
    [work] = owner.works
    work.dataReceived(RESPONSE)
    return user, userTransport, work


def run(requests: int) -> float:
    """CPU seconds for ``requests`` request/response exchanges on one keep-alive connection (CPU
    time, not wall time: the machine may be shared)."""
    user, userTransport, work = setup()
    workTransport = work.transport
    start = time.process_time()
    for _ in range(requests):
        user.dataReceived(REQUEST)
        work.dataReceived(RESPONSE)
        userTransport.clear()
        workTransport.clear()
    elapsed = time.process_time() - start
    assert len(work.transport.value()) == 0 and not userTransport.disconnecting
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="cProfile one run: top functions and h11's share")
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, args.requests)
        stats = pstats.Stats(profiler, stream=io.StringIO())
        total = stats.total_tt
        h11 = sum(tt for (path, _, _), (_, _, tt, _, _) in stats.stats.items() if f"{os.sep}h11{os.sep}" in path)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
        calls = sum(nc for (_, nc, _, _, _) in stats.stats.values())
        h11calls = sum(nc for (path, _, _), (_, nc, _, _, _) in stats.stats.items() if f"{os.sep}h11{os.sep}" in path)
        # Call counts do not depend on the machine's load, unlike times: they show a change.
        print(f"{calls / args.requests:.0f} Python calls per request, {h11calls / args.requests:.0f} of them in h11; "
              f"h11 {h11 / total:.0%} of {total / args.requests * 1e6:.1f} us per request (under cProfile)")
        return 0
    best = min(run(args.requests) for _ in range(5))
    print(f"{best / args.requests * 1e6:.1f} us per request ({args.requests} keep-alive requests, best of 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
