"""Hot reload: apply a new configuration's proxies and visitors to a running frpc.

frp 0.65 (``proxy.Manager.UpdateAll``, ``visitor.Manager.UpdateAll``) compares each running
proxy's configuration with the new one *by value*: a proxy that is gone or differs in any field
is stopped (CloseProxy to frps), then every proxy not running any more -- new or changed -- is
started.  Unchanged proxies are not touched, so their user connections stay open.  Visitors are
handled the same way.  Only proxies and visitors change (and the ``start`` filter, which is
applied while loading); server address, auth, transport, log and webServer settings need a
restart, and are ignored here as frp ignores them.

:func:`diffConfigs` decides (plain data in, plain data out); :func:`applyConfig` carries the
decision out through :class:`~frptw.client.FrpClientService`'s public API and logs frp's lines
(``proxy removed: [a b]``, ``proxy added: [c]``, ``visitor removed: …``, ``visitor added: …``).
:class:`Reloader` reads the configuration file again and applies it (the admin API's
``/api/reload``, SIGHUP under twistd); it lives here, not with the admin API, so that an frpc
without ``webServer.port`` never imports ``twisted.web``.
"""

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure

from frptw.config import ClientConfig, ProxyConfig, VisitorConfig, load_client_config
from frptw.errors import ConfigError, FrpError
from frptw.logs import FrpLogger, unexpected

_log = FrpLogger(namespace="frptw.client")


@dataclass(frozen=True)
class ConfigDiff:
    """What a reload changes: names to stop (gone or changed) and configurations to start (new
    or changed), each in configuration order."""

    removedProxies: Tuple[str, ...] = ()
    addedProxies: Tuple[ProxyConfig, ...] = ()
    removedVisitors: Tuple[str, ...] = ()
    addedVisitors: Tuple[VisitorConfig, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.removedProxies or self.addedProxies or self.removedVisitors or self.addedVisitors)


def _diff(running: Mapping[str, object], wanted: Sequence) -> Tuple[Tuple[str, ...], Tuple]:
    byName = {cfg.name: cfg for cfg in wanted}
    removed = tuple(name for name, cfg in running.items() if byName.get(name) != cfg)
    added = tuple(cfg for cfg in wanted if cfg.name not in running or cfg.name in removed)
    return removed, added


def diffConfigs(
    runningProxies: Mapping[str, ProxyConfig],
    proxies: Sequence[ProxyConfig],
    runningVisitors: Mapping[str, VisitorConfig],
    visitors: Sequence[VisitorConfig],
) -> ConfigDiff:
    """Compare the running configurations (by name) with the wanted ones."""
    removedProxies, addedProxies = _diff(runningProxies, proxies)
    removedVisitors, addedVisitors = _diff(runningVisitors, visitors)
    return ConfigDiff(removedProxies, addedProxies, removedVisitors, addedVisitors)


def _names(items) -> str:
    """Go's ``%s`` of a string slice: ``[a b]``."""
    return "[" + " ".join(items) + "]"


def applyConfig(service, proxies: Sequence[ProxyConfig], visitors: Sequence[VisitorConfig]) -> Deferred:
    """Make ``service`` run exactly ``proxies`` and ``visitors``; fires with the
    :class:`ConfigDiff` once removed visitors have closed their listeners and changed ones
    listen again.  Proxies are not waited for: frps answers them later, as in frp, and a
    refusal shows in their status (``start error``) and in the log."""
    diff = diffConfigs(service.proxyConfigs(), proxies, service.visitorConfigs(), visitors)
    for name in diff.removedProxies:
        service.removeProxy(name)
    if diff.removedProxies:
        _log.info("proxy removed: {names}", names=_names(service.wireName(n) for n in diff.removedProxies))
    for cfg in diff.addedProxies:
        # frps's refusal is logged and in the status; anything else is a bug, logged as one.
        service.addProxy(cfg).addErrback(unexpected(_log, "adding proxy [{name}]", FrpError, name=cfg.name))
    if diff.addedProxies:
        _log.info("proxy added: {names}", names=_names(service.wireName(c.name) for c in diff.addedProxies))
    closing = [service.removeVisitor(name) for name in diff.removedVisitors]
    if diff.removedVisitors:
        _log.info("visitor removed: {names}", names=_names(diff.removedVisitors))
    return gatherResults(closing, consumeErrors=True).addCallback(_startVisitors, service, diff)


def _startVisitors(_: List[None], service, diff: ConfigDiff) -> ConfigDiff:
    for cfg in diff.addedVisitors:
        # A refused configuration or port is logged; anything else is a bug, logged as one.
        service.addVisitor(cfg).addErrback(
            unexpected(_log, "adding visitor [{name}]", FrpError, CannotListenError, name=cfg.name))
    if diff.addedVisitors:
        _log.info("visitor added: {names}", names=_names(c.name for c in diff.addedVisitors))
    return diff


class Reloader:
    """Reloads frpc's configuration file into a running :class:`FrpClientService`.

    :param service: the running frpc.
    :param path: the configuration file (None: frpc was configured without a file).
    :param strict: default strictness (unknown keys rejected) when a caller does not choose.
    """

    def __init__(self, service, path: Optional[str], strict: bool = True) -> None:
        self.service = service
        self.path = path
        self.strict = strict

    def load(self, strict: Optional[bool] = None) -> ClientConfig:
        """The file's configuration, loaded and verified; raises ConfigError."""
        if not self.path:
            raise ConfigError("frpc has no config file path")
        return load_client_config(self.path, strict=self.strict if strict is None else strict)

    def reload(self, strict: Optional[bool] = None) -> Deferred:
        """Load the file and apply its proxies and visitors; fires with the ConfigDiff, fails
        with ConfigError (nothing changed) when the file does not load."""
        d = maybeDeferred(self.load, strict).addCallback(self.service.applyConfig)
        return d.addCallbacks(self._reloaded, self._failed)

    def _reloaded(self, diff: ConfigDiff) -> ConfigDiff:
        _log.info("success reload conf")
        return diff

    def _failed(self, failure: Failure) -> Failure:
        _log.warn("reload frpc proxy config error: {error}", error=failure.value)
        if not failure.check(FrpError):
            _log.failure("reloading {path}", failure, path=self.path)  # a bug: keep its traceback
        return failure
