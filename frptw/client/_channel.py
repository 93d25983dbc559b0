"""The byte level of frpc's control connection, sans-IO.

Theory of operation (wire-protocol.md §5.1, §6.1): frpc writes ``Login`` in clear and reads
``LoginResp`` in clear; from then on both directions are AES-128-CFB streams keyed with
``derive_key(token)``, each started with its writer's own IV.  The reader must not read past
``LoginResp``: the bytes after it (frps's IV and its first encrypted messages, often in the
same TCP segment) belong to the encrypted stream.  :class:`ControlChannel` is that switch:
feed it received bytes, take messages out, and ask it for the bytes of messages to send.
"""

from typing import Optional, Sequence

from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import Login, LoginResp, Message, MessageReader, encode_message


class ControlChannel:
    """Control-connection framing: clear until ``LoginResp``, AES-CFB both ways after it."""

    def __init__(self, token: str) -> None:
        self._key = derive_key(token)
        self._reader = MessageReader()
        self._codec: Optional[AESCFBCodec] = None

    @property
    def encrypted(self) -> bool:
        return self._codec is not None

    def encode(self, messages: Sequence[Message]) -> bytes:
        """The bytes of ``messages``, ready for one write: ``Login`` in clear (the only message
        sent before ``LoginResp``), anything after it encrypted in one pass (the first
        encrypted bytes carry our IV)."""
        if self._codec is None:
            if [type(m) for m in messages] != [Login]:
                raise RuntimeError(f"only Login can be sent before LoginResp, not {messages!r}")
            return encode_message(messages[0])
        return self._codec.encode(b"".join(map(encode_message, messages)))

    def receive_data(self, data: bytes) -> None:
        if self._codec is not None:
            data = self._codec.decode(data)
        self._reader.feed(data)

    def next_message(self) -> Optional[Message]:
        """The next received message, or None.  The first one is always a LoginResp.

        :raises ProtocolError: the peer broke framing, JSON or the encryption stream.
        """
        msg = self._reader.next_message()
        if msg is None or self._codec is not None:
            return msg
        if not isinstance(msg, LoginResp):
            raise ProtocolError(f"expected LoginResp, got {type(msg).__name__}")
        if not msg.error:
            self._codec = AESCFBCodec(self._key)
            rest = self._reader.take_unconsumed()
            if rest:
                self._reader.feed(self._codec.decode(rest))
        return msg
