"""frpc with N tcp proxies, frptw against Go frp 0.65: from frpc's start until all N remote
ports listen on an already running frps.

Run on demand (not a test, not in CI)::

    python bench/bench_nproxy.py [--repeat 3] [--proxies 200,1000] [--pairs go,tw,tw-go]

Per run, frps is started and left to settle (not timed); then frpc is spawned with N tcp proxies
(``bench_tcp``'s defaults config: TLS + tcp mux), every one to the ``_load.py`` echo service,
with remote ports from a block of N consecutive free ports in 10000-19999 (below the tests'
20000-32767, so a test running meanwhile cannot pick one).  Timed: frpc's spawn until every
one of the N remote ports is LISTEN in ``/proc/net/tcp``, i.e. frps has registered every proxy.
The CPU time each process spent until then is noted (in clock ticks of 10 ms).

Then, untimed for the startup figure but reported, one echo of 16 bytes is sent through each
of the N ports in turn (a new connection each): the proof that every proxy works, and the
time that takes.  Pairs are frpc -> frps.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Session, echo, figure, pairs_option, parser, prose  # noqa: E402
from bench_tcp import CONFIGS, PAIRS, MeasureError, cpu_seconds, frpc_common, tcp_proxy_toml  # noqa: E402

CONFIG = CONFIGS["defaults"]
#: Where the remote ports come from: below the range tests take free ports from.
PORTS = range(10000, 20000)


def free_block(n: int) -> list:
    """N consecutive ports in :data:`PORTS` that are all free right now (bound and released)."""
    start = PORTS.start
    while start + n <= PORTS.stop:
        for port in range(start, start + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    start = port + 1
                    break
        else:
            return list(range(start, start + n))
    raise MeasureError(f"no {n} consecutive free ports in {PORTS.start}-{PORTS.stop - 1}")


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--proxies", default="200,1000", help="values of N (default 200,1000)")
    read_pairs = pairs_option(p, "go,tw,tw-go")
    args = p.parse_args()
    counts = [int(n) for n in args.proxies.split(",") if n]
    pairs = read_pairs(args)
    with Session("nproxy", "frpc with N tcp proxies: start until all N remote ports listen", args) as s:
        bench = s.bench
        bench.start_backend()

        def run(pair: str, n: int) -> dict:
            client_impl, server_impl = PAIRS[pair]
            with s.one_run(f"{pair}-{n}-") as run:
                frps, bind_port, _ = s.start_frps(run, server_impl, CONFIG)
                bench.settle([frps])
                ports = free_block(n)
                text = frpc_common(bind_port, CONFIG) + "".join(
                    tcp_proxy_toml(f"p{port}", port, bench.backend_port, CONFIG) for port in ports)
                frps_cpu = cpu_seconds(frps.pid)
                frpc = s.spawn_frp(run, client_impl, "frpc", text)
                ms = s.wait_all_listening(ports, run.children, frpc.spawned, f"{n} proxies listening")
                result = {"ms": ms, "frpc_cpu_ms": cpu_seconds(frpc.pid) * 1e3,
                          "frps_cpu_ms": (cpu_seconds(frps.pid) - frps_cpu) * 1e3}
                started = time.perf_counter()
                failed = [port for port in ports if not echo(port, 5.0)]
                result["echo_all_ms"] = (time.perf_counter() - started) * 1e3
                if failed:
                    raise MeasureError(f"no echo through {len(failed)} of {n} ports (first: {failed[:5]})")
                return result

        for n in counts:
            runs = s.alternate(f"N={n}", lambda pair, n=n: run(pair, n), pairs)
            s.table(f"N = {n} tcp proxies (TLS + tcp mux)", [
                figure(f"frpc start -> all {n} remote ports listening", "ms", True, runs, lambda r: r["ms"]),
                figure("CPU frpc until then", "ms", True, runs, lambda r: r["frpc_cpu_ms"]),
                figure("CPU frps until then", "ms", True, runs, lambda r: r["frps_cpu_ms"]),
                figure(f"then one echo through each of the {n}, in turn", "ms", True, runs, lambda r: r["echo_all_ms"]),
            ], pairs)
        s.write(prose(__doc__))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
