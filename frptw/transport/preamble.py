"""Logical connections that start with exactly one frp message, then carry something else.

A work connection reads ``StartWorkConn`` and then raw bytes; a visitor connection reads
``NewVisitorConnResp`` and then raw bytes; frps reads the first message of every logical
connection (``Login``, ``NewWorkConn``, ``NewVisitorConn``) and hands the connection on.
:class:`PreambleProtocol` is that shared first step: optionally write a greeting, read one
message with :class:`~frptw.wire.messages.MessageReader` (which never reads past it), then
call :meth:`~PreambleProtocol.messageReceived` with the message and the bytes that followed
it.  From then on it is a plain :class:`~frptw.transport.switch.SwitchableProtocol`: what
arrives is held until the subclass switches the connection to its next protocol.
"""

from typing import Optional

from frptw.transport.switch import SwitchableProtocol
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import Message, MessageReader, encode_message


class PreambleProtocol(SwitchableProtocol):
    """Write ``greeting`` (if any) on connect; read one message; hand it to the subclass."""

    def __init__(self, greeting: Optional[Message] = None) -> None:
        super().__init__()
        self._greeting = greeting
        self._reader: Optional[MessageReader] = MessageReader()

    @property
    def awaitingMessage(self) -> bool:
        """True until the first message arrived (or could not be read)."""
        return self._reader is not None

    def connectionMade(self) -> None:
        super().connectionMade()
        if self._greeting is not None:
            self.transport.write(encode_message(self._greeting))

    def dataReceived(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            super().dataReceived(data)
            return
        reader.feed(data)
        try:
            message = reader.next_message()
        except ProtocolError as e:
            self._reader = None
            self.badMessage(e)
            return
        if message is None:
            return
        self._reader = None
        self.messageReceived(message, reader.take_unconsumed())

    def messageReceived(self, message: Message, leftover: bytes) -> None:
        """The first message arrived; ``leftover`` is what followed it (not yet held)."""
        raise NotImplementedError

    def badMessage(self, error: ProtocolError) -> None:
        """The peer's first bytes are not a valid frp message: the connection must go."""
        raise NotImplementedError
