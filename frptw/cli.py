"""The ``frptw`` command line.

``frptw verify --config FILE [--role frpc|frps] [--no-strict-config]`` checks a configuration
the way ``frpc verify -c FILE`` / ``frps verify -c FILE`` do: exit status 0 and
``FILE: syntax is ok`` (warnings on stderr), or the one-line error on stderr and status 1.
``frptw nathole discover [--config FILE] [--nat_hole_stun_server HOST:PORT] [-l LOCAL_ADDR]`` is
``frpc nathole discover``: STUN discovery as xtcp does it, printing the NAT type and behaviour,
the mapped addresses and the local address, in frp's words.

``frptw status|reload|stop --config FILE [--no-strict-config] [--api-timeout 30s]`` are frp's
``frpc status|reload|stop -c FILE``: they read the admin API's address and credentials from the
frpc configuration FILE (which must load), call a running frpc's admin API and print what frp
prints (the status table, ``reload success``, ``stop success``) with exit status 0, or the
error on stdout with status 1.  Running the services is twistd's job
(``twistd -n frpc --config FILE``).
"""

import argparse
import sys
import traceback
from typing import List, Optional, TextIO

from frptw.adminclient import DEFAULT_TIMEOUT, AdminAPIError, AdminClient, parseDuration, statusReport
from frptw.config import load_client_config, load_config
from frptw.errors import ConfigError

#: frpc's admin commands: what each does, and what it prints on success.
ADMIN_COMMANDS = {
    "status": "overview of all proxies' status (frpc status)",
    "reload": "hot-reload a running frpc's configuration (frpc reload)",
    "stop": "stop a running frpc (frpc stop)",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frptw", description="frp (fast reverse proxy) on Twisted")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="check a configuration file like frpc/frps verify")
    verify.add_argument("--config", "-c", required=True, metavar="FILE", help="frp INI, TOML, YAML or JSON file")
    verify.add_argument("--role", choices=("frpc", "frps"), help="default: tell from the file's content")
    verify.add_argument(
        "--no-strict-config",
        dest="strict",
        action="store_false",
        help="ignore unknown keys in TOML/YAML/JSON (frp's --strict-config=false)",
    )
    nathole = commands.add_parser("nathole", help="actions about nathole (xtcp)")
    actions = nathole.add_subparsers(dest="action", required=True, metavar="ACTION")
    discover = actions.add_parser("discover", help="discover nathole information from stun server")
    discover.add_argument("--config", "-c", metavar="FILE", help="frpc configuration (for natHoleStunServer)")
    discover.add_argument("--nat_hole_stun_server", default="", help="STUN server address for nathole")
    discover.add_argument("--nat_hole_local_addr", "-l", default="", help="local address to connect STUN server")
    for name, description in ADMIN_COMMANDS.items():
        admin = commands.add_parser(name, help=description)
        admin.add_argument("--config", "-c", required=True, metavar="FILE", help="the running frpc's configuration")
        admin.add_argument(
            "--no-strict-config", dest="strict", action="store_false",
            help="ignore unknown keys in TOML/YAML/JSON (frp's --strict-config=false)",
        )
        admin.add_argument(
            "--api-timeout", default=str(DEFAULT_TIMEOUT), type=parseDuration, metavar="DURATION",
            help="timeout for the admin API call, seconds or a Go duration like 30s (default 30s)",
        )
    return parser


def natholeDiscover(reactor, configPath: Optional[str], server: str, localAddr: str, out: TextIO):
    """frpc's ``nathole discover``; a Deferred firing with the exit status."""
    from twisted.internet.defer import Deferred, succeed

    from frptw.client._holesocket import discover, localIPsForNatHole, openHoleSocket
    from frptw.config import ClientConfig, load_client_config
    from frptw.errors import FrpError
    from frptw.wire.hostport import split_host_port
    from frptw.wire.nathole import classify

    config = ClientConfig()
    if configPath:
        try:
            config = load_client_config(configPath)
        except ConfigError:
            pass  # as frp: the command line may say all that is needed
    server = server or config.nat_hole_stun_server
    if not server:
        print("nat_hole_stun_server can not be empty", file=out)
        return succeed(1)

    async def run() -> int:
        host, port = split_host_port(localAddr) if localAddr else ("0.0.0.0", 0)
        hole = openHoleSocket(reactor, port, host or "0.0.0.0")
        try:
            mapped = await discover(reactor, hole, server)
        except FrpError as e:
            print("discover error:", e, file=out)
            return 1
        finally:
            local = hole.transport.getHost()
            hole.close()
        if len(mapped) < 2:
            print(f"discover error: can not get enough addresses, need 2, got: [{' '.join(mapped)}]", file=out)
            return 1
        feature = classify(mapped, localIPsForNatHole())
        print("STUN server:", server, file=out)
        print("Your NAT type is:", feature.nat_type, file=out)
        print("Behavior is:", feature.behavior, file=out)
        print(f"External address is: [{' '.join(mapped)}]", file=out)
        print(f"Local address is: {local.host}:{local.port}", file=out)
        print("Public Network:", "true" if feature.public_network else "false", file=out)
        return 0

    return Deferred.fromCoroutine(run())


def adminCommand(command: str, path: str, strict: bool, timeout: float, out: TextIO) -> int:
    """Run ``status``, ``reload`` or ``stop`` against the frpc configured in ``path`` and print
    frp's output.  Returns 1 when the file does not do; otherwise runs the reactor for the call
    and exits the process with its status (0, or 1 after printing the error)."""
    try:
        config = load_client_config(path, strict=strict)
    except ConfigError as e:
        print(str(e), file=out)
        return 1
    if config.web_server.port <= 0:
        print("web server port should be set if you want to use this feature", file=out)
        return 1
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    async def call(reactor) -> None:
        client = AdminClient(reactor, config.web_server, timeout)
        try:
            if command == "status":
                out.write(statusReport(await client.status()))
            else:
                await (client.reload(strict) if command == "reload" else client.stop())
                print(f"{command} success", file=out)
        except AdminAPIError as e:
            print(str(e), file=out)
            raise SystemExit(1)

    react(lambda reactor: Deferred.fromCoroutine(call(reactor)))  # exits the process with the status
    raise AssertionError("react() returned")


def verify(path: str, role: Optional[str], strict: bool, out: TextIO, err: TextIO) -> int:
    """Check ``path``; print the verdict; return the exit status."""
    try:
        config = load_config(path, role=role, strict=strict)
    except ConfigError as e:
        print(str(e), file=err)
        return 1
    except Exception as e:  # a bug of ours: say so first, then the traceback to report
        print(f"{path}: internal error while checking the file ({type(e).__name__}: {e}); please report it", file=err)
        traceback.print_exc(file=err)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=err)
    print(f"{path}: syntax is ok", file=out)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ADMIN_COMMANDS:
        return adminCommand(args.command, args.config, args.strict, args.api_timeout, sys.stdout)
    if args.command == "nathole":
        from twisted.internet import reactor

        status: List[int] = []

        def done(code: int) -> None:
            status.append(code)
            reactor.stop()

        reactor.callWhenRunning(lambda: natholeDiscover(reactor, args.config, args.nat_hole_stun_server,
                                                        args.nat_hole_local_addr, sys.stdout).addCallback(done))
        reactor.run()
        return status[0] if status else 1
    return verify(args.config, args.role, args.strict, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
