"""Memory, frptw against Go frp 0.65: idle RSS of frps and frpc, and RSS per held connection.

Run on demand (not a test, not in CI)::

    python bench/bench_memory.py [--repeat 3] [--configs defaults] [--conns 1000]

Per run, frps and frpc are started fresh (``bench_tcp``'s config, one tcp proxy to the
``_load.py`` echo service) and left alone for ``--idle`` seconds once the proxy listens: no byte
has crossed the proxy when the **idle** RSS (``VmRSS`` of each process) is read.  Then
``bench_tcp``'s rss measurement opens ``--conns`` connections through the proxy (one 15-byte
echo each, then held open, idle) and reads RSS again: **per connection** = (held - idle) /
conns.  Sockets each process has open are noted too (held, and left over after the
connections are closed: pooled work connections, or a leak).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Session, figure, parser, prose  # noqa: E402
from bench_tcp import CONFIGS, Tunnel, frpc_toml  # noqa: E402

from tests.support import free_port  # noqa: E402


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--configs", default="defaults", help="bench_tcp configs (default defaults)")
    p.add_argument("--conns", type=int, default=1000, help="connections held (default 1000)")
    p.add_argument("--idle", type=float, default=2.0, help="seconds left idle before reading RSS (default 2)")
    args = p.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    if any(c not in CONFIGS for c in configs):
        p.error(f"--configs: some of {', '.join(CONFIGS)}")
    with Session("memory", "Memory: idle RSS and RSS per held connection", args) as s:
        bench = s.bench
        bench.s.hold_conns = args.conns
        bench.start_backend()

        def run(impl: str, config: str) -> dict:
            cfg = CONFIGS[config]
            with s.one_run(f"{impl}-{config}-") as run:
                frps, bind_port, _ = s.start_frps(run, impl, cfg)
                remote_port = free_port()
                frpc = s.spawn_frp(run, impl, "frpc", frpc_toml(bind_port, remote_port, bench.backend_port, cfg))
                s.wait_listening(remote_port, run.children, frpc.spawned, "proxy listening")
                time.sleep(args.idle)
                bench.settle(run.children)
                return bench.rss(Tunnel(frps, frpc, remote_port, {}))

        for config in configs:
            runs = s.alternate(config, lambda impl, config=config: run(impl, config))
            figures = []
            for side in ("frps", "frpc"):
                figures += [
                    figure(f"{side} idle RSS", "MiB", True, runs, lambda r, side=side: r["fresh_mib"][side]),
                    figure(f"{side} RSS with {args.conns} held", "MiB", True, runs,
                           lambda r, side=side: r["held_mib"][side]),
                    figure(f"{side} RSS per held connection", "KiB", True, runs,
                           lambda r, side=side: r["kib_per_conn"][side]),
                    figure(f"{side} sockets held", "", True, runs, lambda r, side=side: r["sockets_held"][side]),
                    figure(f"{side} sockets left after release", "", True, runs,
                           lambda r, side=side: r["sockets_left"][side]),
                ]
            flags = CONFIGS[config]
            s.table(f"{config}: tls={flags['tls']} mux={flags['mux']}", figures, ["go", "tw"])
        s.write(prose(__doc__))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
