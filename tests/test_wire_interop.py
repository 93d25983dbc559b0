"""The sans-IO wire layer against the real Go frps 0.65: login, encrypted control messages, an
encrypted + compressed tcp work connection and an encrypted UDP work connection, driven with
blocking loopback sockets (no reactor, so nothing here can leave the reactor dirty)."""

import os
import socket
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from frptw.wire import messages as m
from frptw.wire.auth import privilege_key
from frptw.wire.codec import ChainCodec
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.snappy import SnappyFramingCodec
from tests.frpbin import frp_binary
from tests.support import free_port, tempDir

TOKEN = "abc"
TIMEOUT = 10.0


class Peer:
    """One blocking connection to frps with an optional stream codec under the messages."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.reader = m.MessageReader()
        self.codec = None

    def send(self, msg: m.Message) -> None:
        wire = m.encode_message(msg)
        self.sock.sendall(self.codec.encode(wire) if self.codec else wire)

    def receive(self) -> m.Message:
        while (msg := self.reader.next_message()) is None:
            self.feed(self.recv())
        return msg

    def recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("frps closed the connection")
        return data

    def feed(self, data: bytes) -> None:
        self.reader.feed(self.codec.decode(data) if self.codec else data)

    def encrypt(self) -> None:
        """Switch to AES-CFB (token key) for everything after the last message read."""
        self.codec = AESCFBCodec(derive_key(TOKEN))
        self.feed(self.reader.take_unconsumed())


def recv_exactly(sock: socket.socket, size: int, decode=lambda data: data) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed after {len(received)} of {size} bytes")
        received += decode(data)
    return bytes(received)


class GoFrpsInteropTests(SynchronousTestCase):
    def setUp(self):
        binary = frp_binary("frps")
        self.port = free_port()
        directory = tempDir(self)
        config = os.path.join(directory, "frps.toml")
        with open(config, "w") as f:
            f.write(f'bindAddr = "127.0.0.1"\nbindPort = {self.port}\nproxyBindAddr = "127.0.0.1"\n'
                    f'auth.token = "{TOKEN}"\nauth.additionalScopes = ["HeartBeats", "NewWorkConns"]\n'
                    'transport.tcpMux = false\nlog.level = "debug"\n')
        self.log_path = os.path.join(directory, "frps.log")
        log = open(self.log_path, "wb")
        self.addCleanup(log.close)
        self.process = subprocess.Popen([binary, "-c", config], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.addCleanup(self._stop)
        self._wait_listening()

    def _stop(self):
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def _wait_listening(self):
        deadline = time.monotonic() + TIMEOUT
        while True:
            with open(self.log_path, "rb") as f:
                if b"frps started successfully" in f.read():
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path, "rb") as f:
                    self.fail(f"frps did not start: {f.read().decode(errors='replace')}")
            time.sleep(0.05)

    def connect(self) -> Peer:
        peer = Peer(self.port)
        self.addCleanup(peer.sock.close)
        return peer

    def keyed(self) -> dict:
        timestamp = int(time.time())
        return {"privilege_key": privilege_key(TOKEN, timestamp), "timestamp": timestamp}

    def login(self) -> tuple:
        control = self.connect()
        control.send(m.Login(version="0.65.0", os="linux", arch="amd64", pool_count=1, **self.keyed()))
        response = control.receive()
        self.assertIsInstance(response, m.LoginResp)
        self.assertEqual((response.version, response.error), ("0.65.0", ""))
        self.assertEqual(len(response.run_id), 16)
        control.encrypt()
        self.assertEqual(control.receive(), m.ReqWorkConn())  # pool_count = 1
        return control, response.run_id

    def add_proxy(self, control: Peer, **fields) -> int:
        port = free_port(socket.SOCK_DGRAM if fields.get("proxy_type") == "udp" else socket.SOCK_STREAM)
        control.send(m.NewProxy(remote_port=port, **fields))
        self.assertEqual(control.receive(), m.NewProxyResp(proxy_name=fields["proxy_name"], remote_addr=f":{port}"))
        return port

    def work_connection(self, run_id: str) -> Peer:
        work = self.connect()
        work.send(m.NewWorkConn(run_id=run_id, **self.keyed()))
        return work

    def test_login_heartbeat_and_bad_login(self):
        control, _ = self.login()
        control.send(m.Ping(**self.keyed()))
        self.assertEqual(control.receive(), m.Pong())
        control.send(m.Ping(privilege_key="0" * 32, timestamp=1))
        self.assertEqual(control.receive(),
                         m.Pong(error="token in heartbeat doesn't match token from configuration"))

        other = self.connect()
        other.send(m.Login(version="0.65.0", privilege_key="0" * 32, timestamp=1, pool_count=1))
        self.assertEqual(other.receive(),
                         m.LoginResp(version="0.65.0", error="token in login doesn't match token from configuration"))

    def test_tcp_work_connection_encrypted_and_compressed(self):
        control, run_id = self.login()
        remote_port = self.add_proxy(control, proxy_name="t", proxy_type="tcp", use_encryption=True,
                                     use_compression=True)
        work = self.work_connection(run_id)
        user = socket.create_connection(("127.0.0.1", remote_port), timeout=TIMEOUT)
        self.addCleanup(user.close)
        request = b"hello user " * 20
        user.sendall(request)

        start = work.receive()
        self.assertEqual(start, m.StartWorkConn(proxy_name="t", src_addr="127.0.0.1", dst_addr="127.0.0.1",
                                                src_port=user.getsockname()[1], dst_port=remote_port))
        data = ChainCodec([AESCFBCodec(derive_key(TOKEN)), SnappyFramingCodec()])
        received = data.decode(work.reader.take_unconsumed())
        received += recv_exactly(work.sock, len(request) - len(received), data.decode)
        self.assertEqual(received, request)

        # Go's snappy reader and AES decrypter take our compressed (0x00) and stored (0x01) chunks.
        reply = os.urandom(70000) + b"compressible " * 10000 + b"!"
        for offset in range(0, len(reply), 30000):
            work.sock.sendall(data.encode(reply[offset:offset + 30000]))
        self.assertEqual(recv_exactly(user, len(reply)), reply)
        # frps refills its pool after taking a work connection.
        self.assertEqual(control.receive(), m.ReqWorkConn())

    def test_udp_work_connection(self):
        control, run_id = self.login()
        work = self.work_connection(run_id)  # pooled before the proxy asks for it
        remote_port = self.add_proxy(control, proxy_name="u", proxy_type="udp", use_encryption=True)
        self.assertEqual(work.receive(), m.StartWorkConn(proxy_name="u"))
        work.encrypt()

        user = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(user.close)
        user.settimeout(TIMEOUT)
        user.bind(("127.0.0.1", 0))
        user.sendto(b"hi\x00\xff", ("127.0.0.1", remote_port))
        packet = work.receive()
        self.assertEqual(packet, m.UDPPacket(c=b"hi\x00\xff", r=m.UDPAddr("127.0.0.1", user.getsockname()[1])))

        work.send(m.UDPPacket(c=b"echo:" + packet.c, r=packet.r))
        self.assertEqual(user.recvfrom(65536), (b"echo:hi\x00\xff", ("127.0.0.1", remote_port)))
