"""Micro-benchmark of frpc's proxy registration: LoginResp to every proxy running, in memory.

No sockets and no reactor: frpc's control protocol on a StringTransport with a ``task.Clock``,
frps's side played by the tests' FakeFrps.  Timed: handling the ``LoginResp`` (which writes
every ``NewProxy`` in one batch) plus handling all N ``NewProxyResp`` arriving in one chunk;
the figure is frpc's own CPU for registering N proxies (issue 13), without TLS, yamux or the
kernel.  Also printed: how many writes the batch took and how many timers are left pending.

    python bench/bench_registration.py                    # N = 200 and 1000, best of 15
    python bench/bench_registration.py --proxies 5000 --repeat 5
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from frptw.client._control_protocol import ControlProtocol  # noqa: E402
from frptw.client._proxies import RUNNING, ProxyTable  # noqa: E402
from frptw.config import parse_client_config  # noqa: E402
from frptw.wire.messages import LoginResp, NewProxyResp, encode_message  # noqa: E402
from tests.fakes import FakeFrps  # noqa: E402


def register(count: int):
    """One registration of ``count`` tcp proxies: (seconds, writes after login, timers left)."""
    config = parse_client_config('serverAddr = "127.0.0.1"\nauth.token = "abc"\n' + "".join(
        f'[[proxies]]\nname = "p{i}"\ntype = "tcp"\nlocalPort = 22\nremotePort = {10000 + i}\n'
        for i in range(count)), "toml")
    clock = Clock()
    table = ProxyTable(config.user, config.server_addr)
    for proxy in config.proxies:
        table.add(proxy)
    control = ControlProtocol(config, table, clock, "", lambda hello: None)
    transport = StringTransport()
    control.makeConnection(transport)
    frps = FakeFrps(transport)
    frps.login()
    writes = []
    write = transport.write
    transport.write = lambda data: (writes.append(len(data)), write(data))
    started = time.perf_counter()
    control.dataReceived(encode_message(LoginResp(version="0.65.0", run_id="r")))
    spent = time.perf_counter() - started
    answers = b"".join(
        frps.encrypted(NewProxyResp(proxy_name=m.proxy_name, remote_addr=f":{m.remote_port}")) for m in frps.messages()
    )
    started = time.perf_counter()
    control.dataReceived(answers)
    spent += time.perf_counter() - started
    assert all(entry.state == RUNNING for entry in table), "not every proxy runs"
    return spent, len(writes), len(clock.getDelayedCalls())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", default="200,1000", help="comma-separated N (default 200,1000)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per N; the best is shown")
    args = parser.parse_args()
    print("| N | CPU, LoginResp to all running (ms) | per proxy (µs) | writes after login | timers left |")
    print("|---|---|---|---|---|")
    for count in (int(n) for n in args.proxies.split(",")):
        spent, writes, timers = min(register(count) for _ in range(args.repeat))
        print(f"| {count} | {spent * 1000:.2f} | {spent / count * 1e6:.1f} | {writes} | {timers} |")


if __name__ == "__main__":
    main()
