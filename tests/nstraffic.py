"""Traffic tools run *inside* a network namespace by the xtcp tests (a test process cannot
open sockets in another namespace itself).

``python -m tests.nstraffic serve PORT``
    TCP echo server on 127.0.0.1:PORT; prints ``echo ready``, then per closed connection
    ``served BYTES SHA256`` (the digest of what it received).
``python -m tests.nstraffic send PORT SIZE``
    Connects to 127.0.0.1:PORT, sends SIZE random bytes while reading the echo back, and prints
    ``sent SHA256 received SHA256 first SECONDS total SECONDS`` (``first``: until the first byte
    came back).  Exit status 1 if the echo is short.
"""

import hashlib
import os
import socket
import sys
import threading
import time


def serve(port: int) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol

    class Echo(Protocol):
        def connectionMade(self) -> None:
            self.digest = hashlib.sha256()
            self.count = 0

        def dataReceived(self, data: bytes) -> None:
            self.digest.update(data)
            self.count += len(data)
            self.transport.write(data)

        def connectionLost(self, reason=None) -> None:
            print(f"served {self.count} {self.digest.hexdigest()}", flush=True)

    reactor.listenTCP(port, Factory.forProtocol(Echo), interface="127.0.0.1")
    print("echo ready", flush=True)
    reactor.run()


def send(port: int, size: int) -> int:
    data = os.urandom(size)
    start = time.monotonic()
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)
    sender = threading.Thread(target=conn.sendall, args=(data,), daemon=True)
    sender.start()
    received = hashlib.sha256()
    count, first = 0, None
    while count < size:
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        if first is None:
            first = time.monotonic() - start
        received.update(chunk)
        count += len(chunk)
    total = time.monotonic() - start
    conn.close()
    print(f"sent {hashlib.sha256(data).hexdigest()} received {received.hexdigest()} first {first or -1:.3f} "
          f"total {total:.3f}", flush=True)
    return 0 if count == size else 1


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(send(int(sys.argv[2]), int(sys.argv[3])))
