"""frp's control messages and their v1 framing, sans-IO.

Theory of operation
-------------------
frp (golib ``msg/json``) frames every control message as::

    type (1 byte, ASCII) | length (signed int64, big-endian) | length bytes of JSON

The JSON is what Go's ``encoding/json`` makes of the message struct, so this module mirrors
Go's rules in both directions:

* **Output** (:func:`encode_message`): keys in Go struct order, ``omitempty`` on every field
  (``false``, ``0``, ``""``, empty lists/maps and absent pointers are dropped), but nested
  structs (``Login.client_spec``, ``NatHoleResp.detect_behavior``) are always written; map keys
  sorted; ``<``, ``>``, ``&``, U+2028 and U+2029 escaped like Go; no whitespace.  For the
  messages frp sends, the output is byte-identical to real frp's.
* **Input** (:class:`MessageReader`): unknown keys are ignored (that is how newer peers stay
  compatible), keys match case-insensitively when no exact match exists, ``null`` leaves a
  field at its zero value, and a JSON value of the wrong type for a known field (a string
  for an int, a float for an int, an int out of int64 range...) is an error, as in Go.

Each message is a slotted dataclass whose attribute names are the JSON keys and whose defaults
are Go's zero values; the JSON schema of a class is derived once from its type hints.

:class:`MessageReader` is an incremental decoder in the style of h11's receive buffer: bytes
go into one ``bytearray`` and are consumed by moving an offset, the consumed prefix is
discarded only when the buffer is drained or when the reader has to wait for more bytes (so
each byte is moved at most once more), and it never reads past the end of the message it
returns: whatever follows (the peer's IV after ``LoginResp``, raw proxy data after
``StartWorkConn``) is handed back untouched by :meth:`MessageReader.take_unconsumed`.
A bad type byte or length is reported as soon as the 9-byte header is buffered, before the
body arrives.

Errors come in two classes, as in h11: :class:`~frptw.wire.errors.ProtocolError` when the
*peer* broke the protocol (close that connection), :class:`MessageTooLarge` when *we* tried
to send a message that no frp peer would accept.
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import ipaddress
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Mapping, NoReturn, Optional, get_args, get_origin, get_type_hints

import pybase64

from frptw.errors import FrpError
from frptw.wire.errors import ProtocolError

__all__ = [
    "MAX_BODY_LENGTH",
    "HEADER_LENGTH",
    "MESSAGE_TYPES",
    "MessageTooLarge",
    "Message",
    "ClientSpec",
    "UDPAddr",
    "PortsRange",
    "NatHoleDetectBehavior",
    "Login",
    "LoginResp",
    "NewProxy",
    "NewProxyResp",
    "CloseProxy",
    "NewWorkConn",
    "ReqWorkConn",
    "StartWorkConn",
    "NewVisitorConn",
    "NewVisitorConnResp",
    "Ping",
    "Pong",
    "UDPPacket",
    "NatHoleVisitor",
    "NatHoleClient",
    "NatHoleResp",
    "NatHoleSid",
    "NatHoleReport",
    "encode_message",
    "encode_body",
    "encode_json",
    "struct_to_json",
    "struct_from_json",
    "decode_body",
    "MessageReader",
]

#: golib's limit on a message body; frp closes the connection on anything longer.
MAX_BODY_LENGTH = 10240

_HEADER = struct.Struct(">Bq")
#: Type byte plus the int64 length.
HEADER_LENGTH = _HEADER.size

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class MessageTooLarge(FrpError, ValueError):
    """A message we were asked to encode has a JSON body over :data:`MAX_BODY_LENGTH`.

    A local error: frp would drop the connection on receiving it, so it is never sent.  The
    usual cause is a ``UDPPacket`` whose payload is too big for v1 framing (about 7.5 KB).
    """


# Markers for Go types that JSON alone does not tell apart.
_UINT16 = "uint16"  # StartWorkConn ports: the JSON must be an integer in 0..65535
_IP_TEXT = "net.IP"  # UDPAddr.IP: "" (nil) or a textual IPv4/IPv6 address
Uint16 = Annotated[int, _UINT16]
IPText = Annotated[str, _IP_TEXT]


class Message:
    """Base of every frp message; ``TYPE`` is its v1 type byte."""

    __slots__ = ()
    TYPE: ClassVar[bytes]


# --------------------------------------------------------------------------------------------
# Message and nested-struct definitions (field order = Go struct order, names = JSON keys)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ClientSpec:
    """``Login.client_spec``: only meaningful to frps's internal SSH-tunnel gateway."""

    type: str = ""
    always_auth_pass: bool = False


@dataclass(slots=True)
class UDPAddr:
    """Go's ``net.UDPAddr`` as JSON: ``{"IP": text, "Port": int, "Zone": str}``, no omitempty.

    ``ip`` is the textual IP (``""`` for Go's nil IP); a non-empty value must parse as an
    IPv4 or IPv6 address, as Go's ``IP.UnmarshalText`` requires.
    """

    ip: IPText = field(default="", metadata={"json": "IP", "always": True})
    port: int = field(default=0, metadata={"json": "Port", "always": True})
    zone: str = field(default="", metadata={"json": "Zone", "always": True})


@dataclass(slots=True)
class PortsRange:
    """An inclusive port range in ``NatHoleDetectBehavior.candidate_ports``."""

    # "from" is a Python keyword, so the attribute carries a trailing underscore.
    from_: int = field(default=0, metadata={"json": "from"})
    to: int = 0


@dataclass(slots=True)
class NatHoleDetectBehavior:
    """``NatHoleResp.detect_behavior``: how this peer should punch (wire-protocol.md §9.4)."""

    role: str = ""
    mode: int = 0
    ttl: int = 0
    send_delay_ms: int = 0
    read_timeout: int = 0
    candidate_ports: list[PortsRange] = field(default_factory=list)
    send_random_ports: int = 0
    listen_random_ports: int = 0


@dataclass(slots=True)
class Login(Message):
    """First message of a control connection (client to server)."""

    TYPE: ClassVar[bytes] = b"o"
    version: str = ""
    hostname: str = ""
    os: str = ""
    arch: str = ""
    user: str = ""
    privilege_key: str = ""
    timestamp: int = 0
    run_id: str = ""
    client_id: str = ""
    metas: dict[str, str] = field(default_factory=dict)
    client_spec: ClientSpec = field(default_factory=ClientSpec)
    pool_count: int = 0


@dataclass(slots=True)
class LoginResp(Message):
    """Answer to Login, in clear; a non-empty ``error`` means the login failed."""

    TYPE: ClassVar[bytes] = b"1"
    version: str = ""
    run_id: str = ""
    error: str = ""


@dataclass(slots=True)
class NewProxy(Message):
    """Registers one proxy; which fields matter depends on ``proxy_type``."""

    TYPE: ClassVar[bytes] = b"p"
    proxy_name: str = ""
    proxy_type: str = ""
    use_encryption: bool = False
    use_compression: bool = False
    bandwidth_limit: str = ""
    bandwidth_limit_mode: str = ""
    group: str = ""
    group_key: str = ""
    metas: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    remote_port: int = 0
    custom_domains: list[str] = field(default_factory=list)
    subdomain: str = ""
    locations: list[str] = field(default_factory=list)
    http_user: str = ""
    http_pwd: str = ""
    host_header_rewrite: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    route_by_http_user: str = ""
    sk: str = ""
    allow_users: list[str] = field(default_factory=list)
    multiplexer: str = ""
    #: frptw only (Go frp ignores it): the compressions other than snappy this frpc can use
    #: for ``use_compression``, preferred first (:mod:`frptw.wire.codec`).
    frptw_compressions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NewProxyResp(Message):
    """frps's answer to NewProxy: ``remote_addr`` on success, ``error`` on failure."""

    TYPE: ClassVar[bytes] = b"2"
    proxy_name: str = ""
    remote_addr: str = ""
    error: str = ""


@dataclass(slots=True)
class CloseProxy(Message):
    """Unregisters a proxy (no response)."""

    TYPE: ClassVar[bytes] = b"c"
    proxy_name: str = ""


@dataclass(slots=True)
class NewWorkConn(Message):
    """First message of a work connection; the key fields only with the NewWorkConns scope."""

    TYPE: ClassVar[bytes] = b"w"
    run_id: str = ""
    privilege_key: str = ""
    timestamp: int = 0


@dataclass(slots=True)
class ReqWorkConn(Message):
    """frps asks for one more work connection; always ``{}``."""

    TYPE: ClassVar[bytes] = b"r"


@dataclass(slots=True)
class StartWorkConn(Message):
    """Binds a work connection to a user connection; raw bytes follow it."""

    TYPE: ClassVar[bytes] = b"s"
    proxy_name: str = ""
    src_addr: str = ""
    dst_addr: str = ""
    src_port: Uint16 = 0
    dst_port: Uint16 = 0
    error: str = ""
    #: frptw only: the compression of this connection when not snappy (chosen by a frptw frps
    #: from the proxy's ``frptw_compressions``; never sent by Go frp, so snappy there).
    frptw_compression: str = ""


@dataclass(slots=True)
class NewVisitorConn(Message):
    """First message of a stcp/sudp visitor connection."""

    TYPE: ClassVar[bytes] = b"v"
    run_id: str = ""
    proxy_name: str = ""
    sign_key: str = ""
    timestamp: int = 0
    use_encryption: bool = False
    use_compression: bool = False
    #: frptw only, as in NewProxy.
    frptw_compressions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NewVisitorConnResp(Message):
    """Answer to NewVisitorConn; a non-empty ``error`` means refused."""

    TYPE: ClassVar[bytes] = b"3"
    proxy_name: str = ""
    error: str = ""
    #: frptw only, as in StartWorkConn: what a frptw frps chose from NewVisitorConn's list.
    frptw_compression: str = ""


@dataclass(slots=True)
class Ping(Message):
    """Heartbeat (control) or keep-alive (UDP work connections)."""

    TYPE: ClassVar[bytes] = b"h"
    privilege_key: str = ""
    timestamp: int = 0


@dataclass(slots=True)
class Pong(Message):
    """Answer to a control-connection Ping."""

    TYPE: ClassVar[bytes] = b"4"
    error: str = ""


@dataclass(slots=True)
class UDPPacket(Message):
    """One datagram inside a UDP/SUDP work connection.

    ``c`` holds the payload bytes (base64 on the wire; invalid base64 is a ProtocolError),
    ``r`` the user's address; ``l`` is unused by current frp.
    """

    TYPE: ClassVar[bytes] = b"u"
    c: bytes = b""
    l: Optional[UDPAddr] = None  # noqa: E741 - frp's JSON key
    r: Optional[UDPAddr] = None


@dataclass(slots=True)
class NatHoleVisitor(Message):
    """xtcp visitor asks frps to broker a hole punch (or only pre-checks)."""

    TYPE: ClassVar[bytes] = b"i"
    transaction_id: str = ""
    proxy_name: str = ""
    pre_check: bool = False
    protocol: str = ""
    sign_key: str = ""
    timestamp: int = 0
    mapped_addrs: list[str] = field(default_factory=list)
    assisted_addrs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NatHoleClient(Message):
    """xtcp proxy side's half of the hole-punch request."""

    TYPE: ClassVar[bytes] = b"n"
    transaction_id: str = ""
    proxy_name: str = ""
    sid: str = ""
    mapped_addrs: list[str] = field(default_factory=list)
    assisted_addrs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NatHoleResp(Message):
    """frps tells each xtcp peer where and how to punch."""

    TYPE: ClassVar[bytes] = b"m"
    transaction_id: str = ""
    sid: str = ""
    protocol: str = ""
    candidate_addrs: list[str] = field(default_factory=list)
    assisted_addrs: list[str] = field(default_factory=list)
    detect_behavior: NatHoleDetectBehavior = field(default_factory=NatHoleDetectBehavior)
    error: str = ""


@dataclass(slots=True)
class NatHoleSid(Message):
    """Session id on an xtcp work connection, and the hole-punching probe payload."""

    TYPE: ClassVar[bytes] = b"5"
    transaction_id: str = ""
    sid: str = ""
    response: bool = False
    nonce: str = ""


@dataclass(slots=True)
class NatHoleReport(Message):
    """xtcp proxy side reports the punching result (no response)."""

    TYPE: ClassVar[bytes] = b"6"
    sid: str = ""
    success: bool = False


_ALL_MESSAGES: tuple[type[Message], ...] = (
    Login, LoginResp, NewProxy, NewProxyResp, CloseProxy, NewWorkConn, ReqWorkConn,
    StartWorkConn, NewVisitorConn, NewVisitorConnResp, Ping, Pong, UDPPacket,
    NatHoleVisitor, NatHoleClient, NatHoleResp, NatHoleSid, NatHoleReport,
)

#: v1 type byte -> message class (the class -> byte direction is ``cls.TYPE``).
MESSAGE_TYPES: Mapping[bytes, type[Message]] = {cls.TYPE: cls for cls in _ALL_MESSAGES}
_CLASS_BY_TYPE_BYTE: dict[int, type[Message]] = {cls.TYPE[0]: cls for cls in _ALL_MESSAGES}


# --------------------------------------------------------------------------------------------
# JSON schema: one _Field per dataclass field, derived from the type hints
# --------------------------------------------------------------------------------------------

# Lone surrogates come from JSON escapes like "\ud800"; Go turns them into U+FFFD.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What Go's json.Marshal escapes beyond what Python's json does.
_GO_HTML_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                    0x2028: "\\u2028", 0x2029: "\\u2029"}


def _clean_text(value: str) -> str:
    """Replace lone surrogates by U+FFFD so every decoded string is valid Unicode."""
    if value.isascii():
        return value
    return _LONE_SURROGATE.sub("\ufffd", value)


def _go_fold(name: str) -> str:
    """Go's case folding for JSON keys (``ToUpper(ToLower(r))`` per rune)."""
    if name.isascii():
        return name.upper()
    folded = []
    for char in name:
        mapped = char.lower().upper()
        # Go maps rune to rune; Python may expand (e.g. "ß" -> "SS"): keep such runes as is.
        folded.append(mapped if len(mapped) == 1 else char)
    return "".join(folded)


def _type_error(where: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(f"{where}: expected {expected}, got {type(value).__name__} {value!r:.40}")


def _decode_str(value: Any, where: str) -> str:
    if type(value) is not str:
        raise _type_error(where, "a string", value)
    return _clean_text(value)


def _decode_int64(value: Any, where: str) -> int:
    if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
        raise _type_error(where, "an int64", value)
    return value


def _decode_uint16(value: Any, where: str) -> int:
    if type(value) is not int or not 0 <= value <= 0xFFFF:
        raise _type_error(where, "a uint16", value)
    return value


def _decode_bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise _type_error(where, "a boolean", value)
    return value


def _decode_str_list(value: Any, where: str) -> list[str]:
    if type(value) is not list:
        raise _type_error(where, "an array of strings", value)
    return ["" if item is None else _decode_str(item, where) for item in value]


def _decode_str_map(value: Any, where: str) -> dict[str, str]:
    if type(value) is not dict:
        raise _type_error(where, "an object of strings", value)
    return {_clean_text(key): "" if item is None else _decode_str(item, where)
            for key, item in value.items()}


def _decode_base64(value: Any, where: str) -> bytes:
    if type(value) is not str:
        raise _type_error(where, "a base64 string", value)
    try:
        return pybase64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(f"{where}: invalid base64 ({e})") from None


@functools.lru_cache(maxsize=1024)  # UDP traffic repeats the same few user addresses
def _is_ip_text(text: str) -> bool:
    if "%" in text:  # Python accepts "fe80::1%eth0", Go's ParseIP does not
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _decode_ip_text(value: Any, where: str) -> str:
    text = _decode_str(value, where)
    if text and not _is_ip_text(text):
        raise ProtocolError(f"{where}: invalid IP address {text!r:.60}")
    return text


def _encode_str_map(value: dict[str, str]) -> dict[str, str]:
    return dict(sorted(value.items()))


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str
    key: str
    path: str  # "Class.key", for error messages
    always: bool
    encode: Optional[Callable[[Any], Any]]
    decode: Callable[[Any, str], Any]


@dataclass(frozen=True, slots=True)
class _Schema:
    cls: type
    fields: tuple[_Field, ...]
    by_key: dict[str, _Field]
    by_folded_key: dict[str, _Field]


_SCHEMAS: dict[type, _Schema] = {}


def _schema(cls: type) -> _Schema:
    """The JSON schema of a message or nested struct class (built once, then cached)."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        hints = get_type_hints(cls, include_extras=True)
        built = []
        for f in dataclasses.fields(cls):
            key = f.metadata.get("json", f.name)
            decode, encode, always = _kind(hints[f.name])
            always = always or f.metadata.get("always", False)
            built.append(_Field(f.name, key, f"{cls.__name__}.{key}", always, encode, decode))
        fields = tuple(built)
        schema = _Schema(cls, fields, {f.key: f for f in fields}, {_go_fold(f.key): f for f in fields})
        _SCHEMAS[cls] = schema
    return schema


def _kind(hint: Any) -> tuple[Callable[[Any, str], Any], Optional[Callable[[Any], Any]], bool]:
    """(decoder, encoder or None for identity, always-present) for a field's type hint."""
    if hint == Uint16:
        return _decode_uint16, None, False
    if hint == IPText:
        return _decode_ip_text, None, False
    if hint is str:
        return _decode_str, None, False
    if hint is bool:
        return _decode_bool, None, False
    if hint is int:
        return _decode_int64, None, False
    if hint is bytes:
        return _decode_base64, _encode_base64, False
    if hint == list[str]:
        return _decode_str_list, None, False
    if hint == dict[str, str]:
        return _decode_str_map, _encode_str_map, False
    if get_origin(hint) is list:
        (item_cls,) = get_args(hint)
        return _struct_list_decoder(item_cls), _encode_struct_list, False
    if get_origin(hint) is not None and type(None) in get_args(hint):  # Optional[Struct]: Go pointer
        (item_cls,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return _struct_decoder(item_cls), _struct_to_dict, False
    if dataclasses.is_dataclass(hint):  # nested struct: Go never omits it
        return _struct_decoder(hint), _struct_to_dict, True
    raise TypeError(f"unsupported field type {hint!r}")


def _encode_base64(value: bytes) -> str:
    return pybase64.b64encode(value).decode("ascii")


def _struct_to_dict(obj: Any) -> dict[str, Any]:
    result = {}
    for f in _schema(type(obj)).fields:
        value = getattr(obj, f.attr)
        if f.always or value:
            result[f.key] = value if f.encode is None else f.encode(value)
    return result


def _struct_from_dict(cls: type, obj: Any, where: str) -> Any:
    if type(obj) is not dict:
        raise _type_error(where, "an object", obj)
    schema = _schema(cls)
    values = {}
    for key, value in obj.items():
        f = schema.by_key.get(key)
        if f is None:
            f = schema.by_folded_key.get(_go_fold(key))
            if f is None:
                continue  # unknown keys are how newer frp versions stay compatible
        if value is not None:  # null leaves Go's zero value
            values[f.attr] = f.decode(value, f.path)
    return cls(**values)


def _struct_decoder(cls: type) -> Callable[[Any, str], Any]:
    _schema(cls)
    return lambda value, where: _struct_from_dict(cls, value, where)


def _encode_struct_list(items: list[Any]) -> list[dict[str, Any]]:
    return [_struct_to_dict(item) for item in items]


def _struct_list_decoder(cls: type) -> Callable[[Any, str], Any]:
    _schema(cls)

    def decode(value: Any, where: str) -> list[Any]:
        if type(value) is not list:
            raise _type_error(where, "an array of objects", value)
        return [cls() if item is None else _struct_from_dict(cls, item, where) for item in value]

    return decode


for _cls in _ALL_MESSAGES:  # build every schema at import: a bad definition fails early
    _schema(_cls)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

_json_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False,
                                 allow_nan=False)


def struct_to_json(obj: Any) -> dict[str, Any]:
    """A message (or nested struct) as the JSON object Go marshals it to, before encoding;
    for JSON documents that embed frp messages (the server plugin RPC)."""
    return _struct_to_dict(obj)


def struct_from_json(cls: type, obj: Any, where: str) -> Any:
    """An instance of ``cls`` (a message or any slotted dataclass of the kinds used here) from
    a decoded JSON object, with Go's rules (see the module docstring).

    :raises ProtocolError: ``obj`` is not an object, or a known key has a value of the wrong type.
    """
    _schema(cls)
    return _struct_from_dict(cls, obj, where)


def encode_body(msg: Message) -> bytes:
    """The JSON body Go's ``encoding/json`` would produce for ``msg``."""
    return encode_json(_struct_to_dict(msg))


def encode_json(value: Any) -> bytes:
    """``value`` (JSON-ready, keys already in the order Go would write them) as Go's
    ``json.Marshal`` writes it: no whitespace, HTML characters and U+2028/9 escaped, UTF-8.
    Also used by frps's dashboard API."""
    text = _json_encoder.encode(value)
    # Five substring scans beat one regex search by far on long (base64) strings.
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = text.translate(_GO_HTML_ESCAPES)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a local string: Go writes U+FFFD
        return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def encode_message(msg: Message) -> bytes:
    """``msg`` in v1 framing: type byte, int64 BE body length, JSON body.

    :raises MessageTooLarge: if the body is longer than frp accepts.
    """
    body = encode_body(msg)
    if len(body) > MAX_BODY_LENGTH:
        raise MessageTooLarge(f"{type(msg).__name__} body is {len(body)} bytes, limit {MAX_BODY_LENGTH}")
    return _HEADER.pack(msg.TYPE[0], len(body)) + body


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ProtocolError(f"invalid JSON literal {name}")


class _HugeInteger:
    """Stands for an integer literal too long to be an int64.

    Go skips such a number under an unknown key and rejects it for an int field; Python's
    ``int()`` would refuse to parse more than 4300 digits at all.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<integer out of int64 range>"


_HUGE_INTEGER = _HugeInteger()


def _parse_int(text: str) -> object:
    return int(text) if len(text) <= 20 else _HUGE_INTEGER


_json_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)


def decode_body(type_byte: int, body: bytes | bytearray) -> Message:
    """Decode a JSON body as the message class of ``type_byte``.

    :raises ProtocolError: unknown type byte, malformed JSON, or a wrongly typed field.
    """
    if type_byte == _UDP_PACKET_TYPE:
        packet = _decode_udp_packet_as_frp_writes_it(body)
        if packet is not None:
            return packet
    cls = _CLASS_BY_TYPE_BYTE.get(type_byte)
    if cls is None:
        raise ProtocolError(f"unknown message type byte 0x{type_byte:02x}")
    # Go reads JSON as UTF-8 only and replaces invalid bytes in strings by U+FFFD.
    text = body.decode("utf-8", "replace")
    try:
        obj = _json_decoder.decode(text)
    except RecursionError:
        raise ProtocolError(f"{cls.__name__}: JSON nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(f"{cls.__name__}: malformed JSON ({e})") from None
    return _struct_from_dict(cls, obj, cls.__name__)


# --------------------------------------------------------------------------------------------
# Datagrams: UDPPacket as frp writes it, without the generic codec per datagram
# --------------------------------------------------------------------------------------------

_UDP_PACKET_TYPE = UDPPacket.TYPE[0]
#: How frp's body for a datagram starts (``{"c":"`` base64 payload ``","r":`` address ``}``);
#: any other spelling (other keys, key order or case, escapes, whitespace) takes the generic path.
_UDP_HEAD = b'{"c":"'
_UDP_MIDDLE = b'","r":'
_UDP_ADDRESS = re.compile(rb'\{"IP":"[0-9A-Fa-f.:]*","Port":[0-9]{1,5},"Zone":"[A-Za-z0-9._-]*"\}')


@functools.lru_cache(maxsize=1024)  # a proxy's datagrams go to and come from a few users
def _udp_tail(ip: str, port: int, zone: str) -> bytes:
    """The end of a datagram's body after its payload: the address as JSON, then ``}``."""
    return _UDP_MIDDLE + encode_json(_struct_to_dict(UDPAddr(ip, port, zone))) + b"}"


@functools.lru_cache(maxsize=1024)
def _udp_address(raw: bytes) -> Optional[tuple[str, int, str]]:
    """(IP, port, zone) of an address in frp's spelling, or None for the generic decoder."""
    if _UDP_ADDRESS.fullmatch(raw) is None:
        return None
    try:
        decoded = _struct_from_dict(UDPAddr, json.loads(raw), "UDPPacket.r")
    except ProtocolError:
        return None
    return decoded.ip, decoded.port, decoded.zone


def encode_udp_packet(payload: bytes, address: UDPAddr) -> bytes:
    """``encode_message(UDPPacket(c=payload, r=address))``, byte for byte: base64 needs no
    JSON escaping and the address's JSON is built once per address, so a datagram costs a
    base64 encoding (pybase64's SIMD codec) and two joins instead of the generic encoder (a
    1400-byte payload: ~14 -> ~1.5 us).

    :raises MessageTooLarge: as :func:`encode_message`.
    """
    if not payload:  # Go omits an empty "c"
        return encode_message(UDPPacket(c=payload, r=address))
    body = _UDP_HEAD + pybase64.b64encode(payload) + _udp_tail(address.ip, address.port, address.zone)
    if len(body) > MAX_BODY_LENGTH:
        return encode_message(UDPPacket(c=payload, r=address))  # raises MessageTooLarge
    return _HEADER.pack(_UDP_PACKET_TYPE, len(body)) + body


def _decode_udp_packet_as_frp_writes_it(body: bytes | bytearray) -> Optional[UDPPacket]:
    """The ``UDPPacket`` of a body in frp's own spelling (what the generic decoder would
    return for it), or None to leave the body to the generic decoder.

    The payload is decoded by pybase64 with the generic path's strictness (alphabet and
    padding checked; the standard library's strict decoder costs ~9 us for a 1400-byte
    payload, pybase64 ~1), and the address's JSON once per address."""
    if not body.startswith(_UDP_HEAD) or not body.endswith(b"}"):
        return None
    middle = body.find(_UDP_MIDDLE, len(_UDP_HEAD))
    if middle < 0:
        return None
    try:
        payload = pybase64.b64decode(body[len(_UDP_HEAD):middle], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not payload:  # Go omits an empty "c": not frp's spelling
        return None
    address = _udp_address(bytes(body[middle + len(_UDP_MIDDLE):-1]))  # bytes: a cache key
    if address is None:
        return None
    return UDPPacket(c=payload, r=UDPAddr(*address))


class MessageReader:
    """Incremental v1 message decoder over a byte stream (sans-IO).

    Usage: after every :meth:`feed`, call :meth:`next_message` until it returns ``None``.
    Draining like that is what bounds memory: the reader then holds less than one maximal
    message (``HEADER_LENGTH + MAX_BODY_LENGTH`` bytes).  The reader itself never limits
    :meth:`feed`, because after a ``StartWorkConn`` the following bytes are not messages
    and belong to whoever calls :meth:`take_unconsumed`.

    After a message that ends the message stream (``LoginResp``, after which the peer's IV
    and ciphertext follow; ``StartWorkConn``; ``NewVisitorConnResp``) the caller must stop
    calling :meth:`next_message` and take the rest with :meth:`take_unconsumed`: the reader
    cannot know, and would reject those bytes as a bad header.

    Once :meth:`next_message` has raised :class:`ProtocolError`, it raises the same error
    again on every call: the stream cannot be resynchronised.
    """

    __slots__ = ("_buffer", "_start", "_error")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0
        self._error: Optional[ProtocolError] = None

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    def next_message(self) -> Optional[Message]:
        """The next complete message, or ``None`` if more bytes are needed.

        :raises ProtocolError: unknown type byte, length < 0 or > 10240, malformed body.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        start = self._start
        available = len(buffer) - start
        if available < HEADER_LENGTH:
            if available and buffer[start] not in _CLASS_BY_TYPE_BYTE:
                self._fail(ProtocolError(f"unknown message type byte 0x{buffer[start]:02x}"))
            self._compact()
            return None
        type_byte, length = _HEADER.unpack_from(buffer, start)
        if type_byte not in _CLASS_BY_TYPE_BYTE:
            self._fail(ProtocolError(f"unknown message type byte 0x{type_byte:02x}"))
        if not 0 <= length <= MAX_BODY_LENGTH:
            self._fail(ProtocolError(f"message length {length} out of range 0..{MAX_BODY_LENGTH}"))
        end = start + HEADER_LENGTH + length
        if len(buffer) < end:
            self._compact()
            return None
        body = buffer[start + HEADER_LENGTH:end]  # a copy: the buffer may be reused below
        self._start = end
        if end == len(buffer):
            buffer.clear()
            self._start = 0
        try:
            return decode_body(type_byte, body)
        except ProtocolError as e:
            self._fail(e)

    def take_unconsumed(self) -> bytes:
        """Return and forget every buffered byte after the last returned message."""
        data = bytes(self._buffer[self._start:])
        self._buffer.clear()
        self._start = 0
        return data

    @property
    def buffered(self) -> int:
        """Number of bytes held that no returned message has consumed."""
        return len(self._buffer) - self._start

    def _compact(self) -> None:
        # Called only while waiting for more bytes, when less than one message is buffered.
        if self._start:
            del self._buffer[:self._start]
            self._start = 0

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._error = error
        self._buffer.clear()
        self._start = 0
        raise error
