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
from typing import Optional

from twisted.application.service import IService
from twisted.internet.interfaces import IReactorCore
from twisted.python import usage

from frptw.config import load_config
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
    """Command line of ``twistd frpc`` / ``twistd frps``."""

    optParameters = [
        ["config", "c", None, "configuration file (frp INI, TOML, YAML or JSON)"],
    ]
    optFlags = [
        ["strict-config", None, "reject unknown keys in TOML/YAML/JSON (frp's default)"],
        ["no-strict-config", None, "ignore unknown keys in TOML/YAML/JSON"],
    ]

    role = "frpc"

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")
        try:
            self.loaded = load_config(
                self["config"], role=self.role, strict=not self["no-strict-config"]
            )
        except ConfigError as e:
            # One clear line and a non-zero exit, before any port is opened; twistd's own
            # UsageError handling would print the whole option summary first.
            sys.stderr.write(f"{self.role}: {e}\n")
            raise SystemExit(1)
        self._choosePidfile()

    def _choosePidfile(self) -> None:
        """Give each config its own pid file, so several twistd runs can share a directory.

        twistd's default ``twistd.pid`` would make a second ``twistd frpc`` (or an frps next to
        an frpc) in the same directory refuse to start; an explicit ``--pidfile`` is kept.
        """
        parent = getattr(self, "parent", None)
        if parent is None or parent.get("pidfile") != "twistd.pid":
            return
        stem = os.path.splitext(os.path.basename(self["config"]))[0]
        digest = hashlib.sha1(os.path.abspath(self["config"]).encode()).hexdigest()[:8]
        parent["pidfile"] = f"{self.role}-{stem}-{digest}.pid"


class ClientOptions(Options):
    role = "frpc"


class ServerOptions(Options):
    role = "frps"


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
