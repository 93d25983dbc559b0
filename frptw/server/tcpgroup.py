"""tcp load-balancing groups: proxies with the same ``group`` share one remote port
(config-reference.md §5.2, wire-protocol.md §7).

The first member of a group binds the port (through the tcp
:class:`~frptw.server.ports.PortAllocator`, under the *group's* name, as frp does, so a
group asking for ``remote_port = 0`` keeps its port across restarts like a proxy would).
Later members join only when they ask for the same ``remote_port`` as the first one did
(``group should have same remote port``) and carry its ``group_key`` (``group auth failed``);
frp checks the port before the key, and so do we.  Each accepted user connection goes to
the next member in turn, and is then served by that member alone: its owner's work
connections, its data plane.  A member that leaves takes no further connections; when the
last one leaves the listener closes and the port is released.

:class:`TCPGroups` and :class:`TCPGroup` do no I/O themselves: the first member passes a
``bind`` function that opens the listener for the port, as with a proxy of its own.
"""

from typing import Callable, Dict, Generic, Optional, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort

from frptw.errors import ProxyError
from frptw.server.ports import PortAllocator
from frptw.server.rotation import Rotation

GROUP_AUTH_FAILED = "group auth failed"
GROUP_DIFFERENT_PORT = "group should have same remote port"


#: A member: the group only keeps it and hands it out (frps's members are tcp proxies).
Member = TypeVar("Member")

#: Opens the group's listener on a port; returns ``None`` when the OS refuses the port.
Bind = Callable[[int, "TCPGroup"], Optional[IListeningPort]]


class TCPGroup(Generic[Member]):
    """One group: its port, its key, its members in the order connections go to them."""

    def __init__(self, name: str, key: str, requestedPort: int) -> None:
        self.name = name
        self.key = key
        #: The ``remote_port`` the first member asked for (0 = any); others must ask the same.
        self.requestedPort = requestedPort
        #: The port actually bound.
        self.port = 0
        self.listener: Optional[IListeningPort] = None
        self.members: Rotation[Member] = Rotation()

    def admit(self, key: str, requestedPort: int) -> None:
        """Raise ProxyError with frp's text unless a member asking this may join."""
        if requestedPort != self.requestedPort:
            raise ProxyError(GROUP_DIFFERENT_PORT)
        if key != self.key:
            raise ProxyError(GROUP_AUTH_FAILED)

    def nextMember(self) -> Member:
        """The member that serves the next user connection (round robin)."""
        return self.members.next()


class TCPGroups:
    """The tcp groups of one frps, by group name."""

    def __init__(self, ports: PortAllocator) -> None:
        self._ports = ports
        self._groups: Dict[str, TCPGroup] = {}

    def get(self, name: str) -> Optional[TCPGroup]:
        """The running group called ``name``, if any."""
        return self._groups.get(name)

    def join(self, member: Member, name: str, key: str, requestedPort: int, bind: Bind) -> "TCPGroup[Member]":
        """Add ``member`` to group ``name``, creating it (and binding its port) if it is the first.

        Raises ProxyError with frp's text (the port allocator's, or the group's) otherwise.
        """
        group = self._groups.get(name)
        if group is None:
            group = TCPGroup(name, key, requestedPort)
            group.port, group.listener = self._ports.acquire(name, requestedPort, lambda port: bind(port, group))
            self._groups[name] = group
        else:
            group.admit(key, requestedPort)
        group.members.add(member)
        return group

    def leave(self, member: Member, group: "TCPGroup[Member]") -> "Deferred[None]":
        """``member`` leaves ``group``; fires once the port is closed if it was the last one."""
        group.members.remove(member)
        if group.members:
            return succeed(None)
        del self._groups[group.name]
        listener, group.listener = group.listener, None
        d = maybeDeferred(listener.stopListening) if listener is not None else succeed(None)
        self._ports.release(group.port)
        return d
