"""KCP (the ARQ protocol frp runs over UDP with ``transport.protocol = "kcp"``), sans-IO.

Wire format (wire-protocol.md §2.7): a datagram carries one or more 24-byte-header segments,
all little-endian: ``conv u32, cmd u8, frg u8, wnd u16, ts u32, sn u32, una u32, len u32``,
then ``len`` bytes.  Commands: 81 push (data), 82 ack, 83 window probe (ask), 84 window tell.

:class:`KcpConnection` follows the reference algorithm (skywind3000's ikcp, which xtaci/kcp-go
ports): selective and cumulative acknowledgement (``una``), retransmission on RTO and on
``resend`` later acknowledgements (fast resend), a receive window announced in every segment
with probing when the peer's is zero, and *stream mode* as frp sets it (every segment has
``frg = 0`` and writes are packed into full segments).  frp's settings: ``nodelay = 1``
(30 ms minimum RTO, RTO grows by half on timeout), interval 20 ms, ``resend = 2``, no
congestion window (``nc = 1``), MTU 1350 of which the FEC layer reserves 8 bytes.

The caller feeds datagrams' KCP part with :meth:`KcpConnection.input`, calls
:meth:`KcpConnection.flush` every ``interval`` milliseconds (and whenever it wants data out
now) to get the packets to send, and takes received bytes with :meth:`KcpConnection.recv`.
Sequence numbers and timestamps are 32-bit on the wire and kept as Python integers here
(a session would have to move terabytes before they wrap).
"""

import struct
from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

from frptw.errors import ProtocolError

HEADER = struct.Struct("<IBBHIIII")
OVERHEAD = HEADER.size  # 24

CMD_PUSH = 81
CMD_ACK = 82
CMD_WASK = 83
CMD_WINS = 84

_ASK_SEND = 1
_ASK_TELL = 2

RTO_NODELAY_MIN = 30
RTO_MIN = 100
RTO_DEFAULT = 200
RTO_MAX = 60000
PROBE_INIT = 7000
PROBE_LIMIT = 120000
#: Transmissions of one segment after which the link counts as dead.
DEAD_LINK = 20
#: Sent as segment 0 (again) with every timed-out retransmission once the peer acknowledged
#: segment 0.  A peer that still has the conversation takes it for a duplicate (acknowledged,
#: not delivered).  A peer that forgot it, as kcp-go's listener does when frps closes a work
#: conversation before acknowledging our last segments, opens a new one from our
#: retransmission; this byte is then that conversation's first, which Go frps's bind-port
#: sniffer reads at once and rejects (no frp message starts with 0) instead of blocking its
#: accept loop for 10 s waiting for one (see :meth:`KcpConnection.flush`).
FORGOTTEN_PROBE = b"\0"
_MASK32 = 0xFFFFFFFF


class _Segment:
    __slots__ = ("sn", "ts", "data", "resendts", "rto", "fastack", "xmit")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sn = 0
        self.ts = 0
        self.resendts = 0
        self.rto = 0
        self.fastack = 0
        self.xmit = 0


class KcpConnection:
    """One KCP conversation (see the module docstring).

    :param conv: the conversation id (frpc picks a random one; frps takes the client's).
    :param mtu: the largest packet :meth:`flush` returns.
    :param sendWindow: ``snd_wnd`` in segments (frpc 128, frps 1024).
    :param receiveWindow: ``rcv_wnd`` in segments (frpc 512, frps 1024).
    """

    def __init__(
        self,
        conv: int,
        mtu: int = 1342,
        sendWindow: int = 128,
        receiveWindow: int = 512,
        nodelay: int = 1,
        interval: int = 20,
        resend: int = 2,
        congestionControl: bool = False,
    ) -> None:
        self.conv = conv & _MASK32
        self.mtu = mtu
        self.mss = mtu - OVERHEAD
        self.sendWindow = sendWindow
        self.receiveWindow = receiveWindow
        self.remoteWindow = receiveWindow
        self.interval = interval
        self.nodelay = nodelay
        self.fastResend = resend
        self.congestionControl = congestionControl
        self.cwnd = 1
        self.incr = 0
        self.ssthresh = 2
        self.minRto = RTO_NODELAY_MIN if nodelay else RTO_MIN
        self.rto = RTO_DEFAULT
        self.srtt = 0
        self.rttvar = 0
        self.sndUna = 0
        self.sndNxt = 0
        self.rcvNxt = 0
        self.probe = 0
        self.probeWait = 0
        self.probeAt = 0
        #: True once a segment was sent DEAD_LINK times without being acknowledged.
        self.dead = False
        self._sndQueue: Deque[bytes] = deque()
        self._sndBuf: Deque[_Segment] = deque()
        self._rcvBuf: Dict[int, bytes] = {}
        self._rcvQueue: Deque[bytes] = deque()
        self._acks: List[Tuple[int, int]] = []

    # -- sending ---------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue ``data`` (stream mode: packed into full segments)."""
        if not data:
            return
        queue = self._sndQueue
        mss = self.mss
        view = memoryview(data)
        if queue and len(queue[-1]) < mss:
            room = mss - len(queue[-1])
            queue[-1] = queue[-1] + bytes(view[:room])
            view = view[room:]
        for start in range(0, len(view), mss):
            queue.append(bytes(view[start:start + mss]))

    @property
    def waitingToSend(self) -> int:
        """Segments queued or in flight (kcp-go's ``WaitSnd``)."""
        return len(self._sndBuf) + len(self._sndQueue)

    # -- receiving -------------------------------------------------------------------------
    def recv(self) -> bytes:
        """Every byte received in order so far (stream mode), b"" if none."""
        queue = self._rcvQueue
        if not queue:
            return b""
        full = len(queue) >= self.receiveWindow
        data = b"".join(queue)
        queue.clear()
        self._moveReceived()
        if full and len(queue) < self.receiveWindow:
            self.probe |= _ASK_TELL  # tell the peer our window opened again
        return data

    def _moveReceived(self) -> None:
        buf = self._rcvBuf
        queue = self._rcvQueue
        while self.rcvNxt in buf and len(queue) < self.receiveWindow:
            queue.append(buf.pop(self.rcvNxt))
            self.rcvNxt += 1

    def input(self, data: bytes, now: int) -> None:
        """Take one packet's segments; raises ProtocolError on a malformed or foreign one
        (segments before the bad one are taken)."""
        oldUna = self.sndUna
        maxAck: Optional[int] = None
        maxAckTs = 0
        offset = 0
        end = len(data)
        unpack = HEADER.unpack_from
        while end - offset >= OVERHEAD:
            conv, cmd, _frg, wnd, ts, sn, una, length = unpack(data, offset)
            if conv != self.conv:
                raise ProtocolError(f"KCP segment for conversation {conv}, expected {self.conv}")
            offset += OVERHEAD
            if end - offset < length:
                raise ProtocolError(f"KCP segment of {length} bytes in a packet with {end - offset} left")
            if cmd < CMD_PUSH or cmd > CMD_WINS:
                raise ProtocolError(f"KCP segment with unknown command {cmd}")
            self.remoteWindow = wnd
            self._acknowledgedBefore(una)
            if cmd == CMD_ACK:
                rtt = (now - ts) & _MASK32
                if rtt < 0x80000000:
                    self._updateRto(rtt)
                self._acknowledged(sn)
                if maxAck is None or sn > maxAck:
                    maxAck, maxAckTs = sn, ts
            elif cmd == CMD_PUSH:
                if sn < self.rcvNxt + self.receiveWindow:
                    self._acks.append((sn, ts))
                    if sn >= self.rcvNxt and sn not in self._rcvBuf:
                        self._rcvBuf[sn] = bytes(data[offset:offset + length])
                        self._moveReceived()
            elif cmd == CMD_WASK:
                self.probe |= _ASK_TELL
            offset += length
        if maxAck is not None:
            for seg in self._sndBuf:
                if seg.sn >= maxAck:
                    break
                if ((maxAckTs - seg.ts) & _MASK32) < 0x80000000:
                    seg.fastack += 1
        if self.congestionControl and self.sndUna > oldUna and self.cwnd < self.remoteWindow:
            self._growWindow()

    def _acknowledgedBefore(self, una: int) -> None:
        buf = self._sndBuf
        while buf and buf[0].sn < una:
            buf.popleft()
        self.sndUna = buf[0].sn if buf else self.sndNxt

    def _acknowledged(self, sn: int) -> None:
        if sn < self.sndUna or sn >= self.sndNxt:
            return
        for index, seg in enumerate(self._sndBuf):
            if seg.sn == sn:
                del self._sndBuf[index]
                break
            if seg.sn > sn:
                break
        self.sndUna = self._sndBuf[0].sn if self._sndBuf else self.sndNxt

    def _updateRto(self, rtt: int) -> None:
        if self.srtt == 0:
            self.srtt = rtt
            self.rttvar = rtt // 2
        else:
            delta = abs(rtt - self.srtt)
            self.rttvar = (3 * self.rttvar + delta) // 4
            self.srtt = max(1, (7 * self.srtt + rtt) // 8)
        rto = self.srtt + max(self.interval, 4 * self.rttvar)
        self.rto = min(max(self.minRto, rto), RTO_MAX)

    def _growWindow(self) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd += 1
            self.incr += mss
        else:
            self.incr = max(self.incr, mss)
            self.incr += (mss * mss) // self.incr + mss // 16
            if (self.cwnd + 1) * mss <= self.incr:
                self.cwnd = (self.incr + mss - 1) // mss
        if self.cwnd > self.remoteWindow:
            self.cwnd = self.remoteWindow
            self.incr = self.remoteWindow * mss

    # -- output ----------------------------------------------------------------------------
    def flush(self, now: int) -> List[bytes]:
        """Acknowledgements, probes, new and due segments, packed into packets of at most
        ``mtu`` bytes; with a timed-out retransmission, :data:`FORGOTTEN_PROBE` as segment 0.

        KCP has no close: a conversation ends when one side stops.  kcp-go 5.6.13 (frp 0.65)
        drops the acknowledgements its ``Close`` means to flush, and its listener keys
        conversations by address and opens a new one for any segment from an address it does
        not know, so after Go frps ended a work conversation (``tcpMux = false``) our resends
        of its unacknowledged last segments start a conversation that never speaks; Go frpc
        does the same (measured).  The probe byte makes such a conversation speak."""
        packets: List[bytes] = []
        buffer = bytearray()
        mtu = self.mtu
        conv = self.conv
        pack = HEADER.pack
        window = max(0, self.receiveWindow - len(self._rcvQueue))
        una = self.rcvNxt

        def room(size: int) -> None:
            if len(buffer) + size > mtu:
                packets.append(bytes(buffer))
                buffer.clear()

        for sn, ts in self._acks:
            room(OVERHEAD)
            buffer += pack(conv, CMD_ACK, 0, window, ts, sn & _MASK32, una & _MASK32, 0)
        self._acks = []

        if self.remoteWindow == 0:
            if self.probeWait == 0:
                self.probeWait = PROBE_INIT
                self.probeAt = now + self.probeWait
            elif now >= self.probeAt:
                self.probeWait = min(PROBE_LIMIT, max(PROBE_INIT, self.probeWait + self.probeWait // 2))
                self.probeAt = now + self.probeWait
                self.probe |= _ASK_SEND
        else:
            self.probeWait = self.probeAt = 0
        for flag, cmd in ((_ASK_SEND, CMD_WASK), (_ASK_TELL, CMD_WINS)):
            if self.probe & flag:
                room(OVERHEAD)
                buffer += pack(conv, cmd, 0, window, now & _MASK32, 0, una & _MASK32, 0)
        self.probe = 0

        cwnd = min(self.sendWindow, self.remoteWindow)
        if self.congestionControl:
            cwnd = min(self.cwnd, cwnd)
        queue = self._sndQueue
        while queue and self.sndNxt < self.sndUna + cwnd:
            seg = _Segment(queue.popleft())
            seg.sn = self.sndNxt
            self.sndNxt += 1
            self._sndBuf.append(seg)

        resend = self.fastResend if self.fastResend > 0 else _MASK32
        lost = changed = False
        for seg in self._sndBuf:
            if seg.xmit == 0:
                seg.xmit = 1
                seg.rto = self.rto
                seg.resendts = now + seg.rto
            elif now >= seg.resendts:
                seg.xmit += 1
                seg.rto += seg.rto // 2 if self.nodelay else max(seg.rto, self.rto)
                seg.resendts = now + seg.rto
                lost = True
            elif seg.fastack >= resend:
                seg.xmit += 1
                seg.fastack = 0
                seg.resendts = now + seg.rto
                changed = True
            else:
                continue
            seg.ts = now & _MASK32
            data = seg.data
            room(OVERHEAD + len(data))
            buffer += pack(conv, CMD_PUSH, 0, window, seg.ts, seg.sn & _MASK32, una & _MASK32, len(data))
            buffer += data
            if seg.xmit >= DEAD_LINK:
                self.dead = True
        if lost and self.sndUna > 0:
            room(OVERHEAD + len(FORGOTTEN_PROBE))
            buffer += pack(conv, CMD_PUSH, 0, window, now & _MASK32, 0, una & _MASK32, len(FORGOTTEN_PROBE))
            buffer += FORGOTTEN_PROBE
        if buffer:
            packets.append(bytes(buffer))

        if self.congestionControl:
            if changed:
                inflight = self.sndNxt - self.sndUna
                self.ssthresh = max(2, inflight // 2)
                self.cwnd = self.ssthresh + resend
                self.incr = self.cwnd * self.mss
            if lost:
                self.ssthresh = max(2, cwnd // 2)
                self.cwnd = 1
                self.incr = self.mss
            if self.cwnd < 1:
                self.cwnd = 1
                self.incr = self.mss
        return packets

    @property
    def busy(self) -> bool:
        """Whether anything waits to be sent, acknowledged or probed."""
        return bool(self._sndBuf or self._sndQueue or self._acks or self.probe or self.remoteWindow == 0)
