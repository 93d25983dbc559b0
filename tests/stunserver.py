"""A small STUN server for the xtcp tests: answers Binding Requests on two addresses, each
naming the other as OTHER-ADDRESS (what frp's discovery needs, wire-protocol.md §9.4 step 1).

In a test: ``StunServer.listen(reactor, ("127.0.0.1", 0), ("127.0.0.2", 0))``.  In a network
namespace, as a process: ``python -m tests.stunserver 203.0.113.1:3478 203.0.113.2:3479``.
Anything that is not a Binding Request is dropped and counted (:attr:`StunServer.garbage`).
"""

import sys
from typing import List, Tuple

from twisted.internet.protocol import DatagramProtocol

from frptw.wire import stun
from frptw.wire.errors import ProtocolError

Address = Tuple[str, int]


class _Socket(DatagramProtocol):
    noisy = False

    def __init__(self, server: "StunServer") -> None:
        self.server = server
        self.other: Address = ("", 0)

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        try:
            request = stun.decode(data)
        except ProtocolError:
            self.server.garbage += 1
            return
        if request.type != stun.BINDING_REQUEST:
            self.server.garbage += 1
            return
        self.server.requests.append(addr)
        self.transport.write(stun.encode(stun.binding_response(request, addr, self.other)), addr)


class StunServer:
    """Two UDP sockets that answer STUN Binding Requests."""

    def __init__(self) -> None:
        self.requests: List[Address] = []
        self.garbage = 0
        self.ports: list = []

    @classmethod
    def listen(cls, reactor, primary: Address, alternate: Address) -> "StunServer":
        self = cls()
        sockets = [_Socket(self), _Socket(self)]
        for sock, (host, port) in zip(sockets, (primary, alternate)):
            self.ports.append(reactor.listenUDP(port, sock, interface=host))
        first, second = (p.getHost() for p in self.ports)
        sockets[0].other = (second.host, second.port)
        sockets[1].other = (first.host, first.port)
        return self

    @property
    def address(self) -> str:
        host = self.ports[0].getHost()
        return f"{host.host}:{host.port}"

    def stop(self) -> None:
        for port in self.ports:
            port.stopListening()


def _parse(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    from twisted.internet import reactor

    server = StunServer.listen(reactor, _parse(sys.argv[1]), _parse(sys.argv[2]))
    print("stun server ready", server.address, flush=True)
    reactor.run()
