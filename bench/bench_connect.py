"""New connections through a tcp proxy, frptw against Go frp 0.65: first-echo latency and the
sequential connection rate.

Run on demand (not a test, not in CI)::

    python bench/bench_connect.py [--repeat 3] [--seconds 3] [--configs defaults,mux-off]
        [--pairs go,tw,tw-go,go-tw]

One client (``_load.py connrate --workers 1``) loops, one connection at a time: connect to the
proxy's remote port on frps, send 16 bytes (after the service's one mode byte, in the same
write), wait for the 16 bytes of echo, close.  A cycle's latency runs from ``connect()`` to the
last echoed byte; that is what a user of a proxied service waits before the first answer, and
it crosses every hop: frps accepts, asks frpc for a work connection (or takes a pooled one),
frpc dials the service, and the bytes go through both.  Connections per second count whole
cycles, close included.  CPU per connection is each frp process's user + system time over the
run.

The tunnels (Go frpc -> Go frps, frptw -> frptw, and with ``--pairs`` the mixed pairs, which
tell frps's share from frpc's; ``bench_tcp``'s configs) are started once per config and stay
up; the runs alternate between them, ``--seconds`` each.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Session, figure, pairs_option, parser, prose  # noqa: E402
from bench_tcp import CONFIGS  # noqa: E402


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of sequential cycles per run (default 3)")
    p.add_argument("--configs", default="defaults,mux-off", help="bench_tcp configs (default defaults,mux-off)")
    read_pairs = pairs_option(p, "go,tw")
    args = p.parse_args()
    pairs = read_pairs(args)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown config: {', '.join(unknown)}")
    with Session("connect", "New connection through a tcp proxy: first echo and sequential rate", args) as s:
        bench = s.bench
        bench.s.connrate_seconds = args.seconds
        bench.start_backend()
        for config in configs:
            tunnels = {}
            try:
                for pair in pairs:
                    tunnels[pair] = bench.start_tunnel(pair, config)

                def run(pair: str) -> dict:
                    return bench.connrate(tunnels[pair].port, tunnels[pair].sides, workers=1, size=16)

                runs = s.alternate(config, run, pairs)
            finally:
                for tunnel in tunnels.values():
                    bench.stop_tunnel(tunnel)
            flags = CONFIGS[config]
            figures = [figure(f"first echo {q}", "ms", True, runs, lambda r, q=q: r["cycle_ms"][q])
                       for q in ("p50", "p90", "p99")]
            figures.append(figure("sequential connections/s", "1/s", False, runs, lambda r: r["per_second"]))
            figures += [figure(f"CPU {side} per connection", "ms", True, runs,
                               lambda r, side=side: r["cpu_ms_per_conn"][side]) for side in ("frps", "frpc")]
            s.table(f"{config}: tls={flags['tls']} mux={flags['mux']}", figures, pairs)
        s.write(prose(__doc__))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
