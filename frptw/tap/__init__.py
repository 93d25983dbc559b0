"""twistd service makers for ``frpc`` and ``frps``.

``twistd frpc`` and ``twistd frps`` share this module: the dropin in ``twisted/plugins`` names
:mod:`frptw.tap.frpc` or :mod:`frptw.tap.frps`, each of which pairs its ``Options`` class with
:func:`makeService`.  The configuration is loaded and validated before any service is
built, so a bad file stops twistd before a port is opened.

Effects on the whole process belong here, not in the services (which an application may
embed): the log level, the open-file limit, the garbage collector's tuning
(:mod:`frptw.tap.collector`), frpc's exit when its first login fails
(``login_fail_exit``) or when the admin API's ``POST /api/stop`` asks, and the SIGHUP reload.
"""

import atexit
import hashlib
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from twisted.application.service import IService
from twisted.internet.interfaces import IReactorCore
from twisted.python import usage

from frptw import FRP_VERSION, __version__
from frptw.config import load_config
from frptw.config.flags import (
    CLIENT_ROOT_FLAGS,
    PROXY_TYPES,
    SERVER_FLAGS,
    VISITOR_TYPES,
    FlagError,
    client_command,
    command_flags,
    server_document,
)
from frptw.config.load import AnyConfig, config_from_document
from frptw.errors import ConfigError
from frptw.logs import set_level


def exitProcess(reactor, status: int = 1) -> None:
    """Stop the reactor and make the process exit with ``status`` once it has unwound.

    twistd has no way for a service to choose the exit status, so the status is applied at
    interpreter exit (after twistd removed its pid file), flushing stdio first.
    """

    def hardExit() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    atexit.register(hardExit)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


class Options(usage.Options):
    """Command line of ``twistd frpc`` / ``twistd frps``: frp's own (a configuration file, or
    the whole configuration as flags: :mod:`frptw.config.flags`), read as frp reads it."""

    role = "frpc"

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        args = sys.argv[1:] if options is None else list(options)
        try:
            self.loaded = self._configure(args)
        except ConfigError as e:  # FlagError too
            # One clear line and a non-zero exit, before any port is opened; twistd's own
            # UsageError handling would print the whole option summary first.
            sys.stderr.write(f"{self.role}: {e}\n")
            raise SystemExit(1)
        self._choosePidfile(args)

    def _configure(self, args: List[str]) -> AnyConfig:
        """The configuration the command line ``args`` gives (each program reads its own)."""
        raise NotImplementedError(f"{type(self).__name__} reads no command line")

    def _fromFile(self, path: str, given: Dict[str, Any]) -> AnyConfig:
        strict = given.get("strict-config", True) and not given.get("no-strict-config", False)
        self["config"] = path
        self["no-strict-config"] = not strict
        return load_config(path, role=self.role, strict=strict)

    def _fromFlags(self, document: Dict[str, Any], source: str) -> AnyConfig:
        self["config"] = None
        self["no-strict-config"] = False
        return config_from_document(document, self.role, source)

    def _exitIfAsked(self, given: Dict[str, Any], usage: str) -> None:
        if given.get("help"):
            print(usage)
            raise SystemExit(0)
        if given.get("version"):
            print(f"frptw {__version__} (frp {FRP_VERSION})")
            raise SystemExit(0)

    def _choosePidfile(self, args: List[str]) -> None:
        """Give each config (or command line) its own pid file, so several twistd runs can
        share a directory.

        twistd's default ``twistd.pid`` would make a second ``twistd frpc`` (or an frps next to
        an frpc) in the same directory refuse to start; an explicit ``--pidfile`` is kept.
        """
        parent = getattr(self, "parent", None)
        if parent is None or parent.get("pidfile") != "twistd.pid":
            return
        if self["config"]:
            stem = os.path.splitext(os.path.basename(self["config"]))[0]
            identity = os.path.abspath(self["config"])
        else:
            stem, identity = "flags", "\0".join(args)
        digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
        parent["pidfile"] = f"{self.role}-{stem}-{digest}.pid"


class ClientOptions(Options):
    """``twistd frpc -c FILE`` (frp's default ``./frpc.ini``), or one proxy from flags:
    ``twistd frpc tcp -s HOST -P PORT -l LOCAL -r REMOTE -n NAME``, ``twistd frpc stcp visitor
    ...`` (``twistd frpc tcp --help`` lists a command's flags)."""

    role = "frpc"

    def _configure(self, args: List[str]) -> AnyConfig:
        given, command = CLIENT_ROOT_FLAGS.parse(args, interspersed=False)
        if not command:
            self._exitIfAsked(given, self.getUsage())
            if given.get("config-dir"):
                raise FlagError("--config-dir (one frpc per file, which frp keeps for its own tests) is not "
                                "supported: run one twistd frpc per file")
            return self._fromFile(given.get("config") or "./frpc.ini", given)
        document, commandGiven = client_command(command)
        visitor = "visitors" in document
        name = " ".join(command[:2] if visitor else command[:1])
        self._exitIfAsked(commandGiven, f"Usage: twistd frpc {name} [flags]\n\n"
                          + command_flags(command[0], visitor).usage())
        return self._fromFlags(document, f"frpc {name} command line")

    def getUsage(self, width: Optional[int] = None) -> str:
        commands = ", ".join(PROXY_TYPES)
        return ("Usage: twistd frpc [-c FILE] | twistd frpc COMMAND [flags]\n\n"
                f"{CLIENT_ROOT_FLAGS.usage()}\n\nCommands (one proxy, no file): {commands};\n"
                f"{', '.join(VISITOR_TYPES)} also take 'visitor' (one visitor).  "
                "'twistd frpc COMMAND --help' lists a command's flags.")


class ServerOptions(Options):
    """``twistd frps -c FILE``, or frps configured by frp's flags (``-t TOKEN -p PORT ...``)
    when no file is given."""

    role = "frps"

    def _configure(self, args: List[str]) -> AnyConfig:
        given, extra = SERVER_FLAGS.parse(args)
        if extra:
            raise FlagError(f'unknown command "{extra[0]}" for "frps"')
        self._exitIfAsked(given, self.getUsage())
        if given.get("config"):
            return self._fromFile(given["config"], given)
        return self._fromFlags(server_document(given), "frps command line")

    def getUsage(self, width: Optional[int] = None) -> str:
        return "Usage: twistd frps [-c FILE] [flags]\n\n" + SERVER_FLAGS.usage()


def _frpc(options: Options, reactor) -> IService:
    """frpc (named ``frpc``), its admin server when ``webServer.port`` is set (``admin``) and
    the SIGHUP reload (``sighup``)."""
    from twisted.application.service import MultiService

    from frptw.client import FrpClientService, Reloader
    from frptw.tap.hangup import HangupReload

    if options.loaded.dns_server:
        from frptw.tap.dns import installDNSServer

        installDNSServer(reactor, options.loaded.dns_server)  # process-wide, as Go frpc's
    top = MultiService()
    frpc = FrpClientService(options.loaded, reactor=reactor, onFatal=lambda failure: exitProcess(reactor))
    frpc.setName("frpc")
    frpc.setServiceParent(top)
    reloader = Reloader(frpc, options["config"], strict=not options["no-strict-config"])
    if options.loaded.web_server.port > 0:
        from frptw.client import AdminService

        admin = AdminService(
            frpc, reloader, reactor,
            onStop=lambda: exitProcess(reactor, 0),
            onListenFailed=lambda failure: exitProcess(reactor, 1),
        )
        admin.setServiceParent(top)
    HangupReload(reloader, reactor).setServiceParent(top)
    return top


def makeService(options: Options, reactor: Optional[IReactorCore] = None) -> IService:
    """Build the frpc or frps service from parsed, validated options."""
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from twisted.logger import Logger

    set_level(options.loaded.log.level)
    log = Logger(namespace="frptw")
    for warning in options.loaded.warnings:
        log.warn("{warning}", warning=warning)
    from frptw.transport.sockets import raiseFileLimit

    raiseFileLimit()  # process-wide effects: the program's, not the embeddable service's
    from frptw.tap.collector import manageMemory

    reactor.callWhenRunning(manageMemory, reactor)  # once started: what start-up made is frozen
    if options.role == "frpc":
        return _frpc(options, reactor)
    from frptw.server import FrpServerService

    service = FrpServerService(options.loaded, reactor=reactor)
    # Like Go frps, which exits when it cannot listen or read its OIDC issuer.
    service.whenListening().addErrback(lambda failure: exitProcess(reactor))
    return service
