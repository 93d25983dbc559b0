"""frp's server plugin RPC without I/O: what frps sends a plugin and what its answer means.

frps asks external HTTP services ("server plugins", ``[[httpPlugins]]`` / INI ``[plugin.NAME]``)
about six operations.  Each call is ``POST <addr><path>?op=<Op>&version=0.1.0`` with the body
``{"version":"0.1.0","op":"<Op>","content":{...}}``, where ``content`` is the frp message in
question as Go marshals it (``omitempty`` fields dropped) plus, for every operation but Login,
``user`` = ``{"user", "metas", "run_id"}`` of the client (always all three keys, ``metas``
``null`` when empty).  The answer is ``{"reject", "reject_reason", "unchange", "content"}``:

* ``reject: true``: the operation fails with ``reject_reason`` as frp's error text;
* ``unchange: true``: the content goes on as it was;
* otherwise ``content`` *replaces* the content: decoded with Go's rules into the operation's
  struct, so an omitted ``content`` is the zero struct (frp 0.65 then registers a proxy with
  an empty name), unknown keys are dropped and a value of the wrong type makes the whole call
  an error.

A status other than 200, a body that is not such JSON, or a wrongly typed field is a failed
call (:class:`ReplyError`), which frps reports as ``send <Op> request to plugin error``.

Each operation's content is a small class with ``to_json`` (what the plugin gets) and
``replaced`` (the content the plugin's ``content`` stands for), so the chain of plugins in
:mod:`frptw.server.plugins` treats them alike.  Fields frptw adds to frp's messages
(``frptw_*``) are never shown to a plugin, and survive its rewrite.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Union

from frptw.config.validate import HTTP_PLUGIN_OPS
from frptw.errors import FrpError, ProtocolError
from frptw.wire import messages as m

#: The plugin API version frp sends (``pkg/plugin/server``'s ``APIVersion``).
API_VERSION = "0.1.0"

#: The operations frp 0.65 can send, in frp's order: the names the configuration's ``ops`` accepts.
OPS = HTTP_PLUGIN_OPS
LOGIN, NEW_PROXY, CLOSE_PROXY, PING, NEW_WORK_CONN, NEW_USER_CONN = OPS

_FRPTW_PREFIX = "frptw_"


class ReplyError(FrpError):
    """A plugin's HTTP answer is not a valid reply (status, JSON, field types); the message
    says what, in the spirit of Go's error."""


@dataclass(slots=True)
class UserInfo:
    """The client an operation is about: its Login's ``user`` and ``metas``, and its run id."""

    user: str = field(default="", metadata={"always": True})
    metas: dict[str, str] = field(default_factory=dict, metadata={"always": True})
    run_id: str = field(default="", metadata={"always": True})

    def to_json(self) -> Dict[str, Any]:
        document = m.struct_to_json(self)
        if not self.metas:
            document["metas"] = None  # Go's nil map
        return document


def _visible(message: object) -> Dict[str, Any]:
    """``message`` as Go frp would marshal it: without the fields only frptw knows."""
    return {k: v for k, v in m.struct_to_json(message).items() if not k.startswith(_FRPTW_PREFIX)}


def _decoded(cls: type, original: object, document: Any, where: str) -> Any:
    """``document`` decoded as ``cls``, keeping ``original``'s frptw-only fields."""
    decoded = m.struct_from_json(cls, document, where)
    kept = {f.name: getattr(original, f.name) for f in dataclasses.fields(cls) if f.name.startswith(_FRPTW_PREFIX)}
    return dataclasses.replace(decoded, **kept) if kept else decoded


def _field(document: Mapping[str, Any], key: str) -> Any:
    """``document[key]`` matched as Go matches JSON keys (exact, else case-insensitively)."""
    if key in document:
        return document[key]
    for name, value in document.items():
        if name.lower() == key:
            return value
    return None


def _user(document: Mapping[str, Any], where: str) -> UserInfo:
    value = _field(document, "user")
    return UserInfo() if value is None else m.struct_from_json(UserInfo, value, f"{where}.user")


def _text(document: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(document, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReplyError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class LoginContent:
    """Login: the client's Login and the address it connected from (no ``user`` object)."""

    login: m.Login
    client_address: str = ""

    def to_json(self) -> Dict[str, Any]:
        document = _visible(self.login)
        if self.client_address:
            document["client_address"] = self.client_address
        return document

    def replaced(self, document: Any) -> "LoginContent":
        login = _decoded(m.Login, self.login, document, "LoginContent")
        return LoginContent(login, _text(document, "client_address", "LoginContent"))


@dataclass(frozen=True)
class MessageContent:
    """NewProxy, CloseProxy, Ping and NewWorkConn: the client's :class:`UserInfo` and the
    message, whose fields sit next to ``user`` (Go embeds the message struct)."""

    user: UserInfo
    message: Union[m.NewProxy, m.CloseProxy, m.Ping, m.NewWorkConn]

    def to_json(self) -> Dict[str, Any]:
        return {"user": self.user.to_json(), **_visible(self.message)}

    def replaced(self, document: Any) -> "MessageContent":
        where = type(self.message).__name__ + "Content"
        message = _decoded(type(self.message), self.message, document, where)
        return MessageContent(_user(document, where), message)


@dataclass(frozen=True)
class UserConnContent:
    """NewUserConn: a user connection to one of the client's proxies (no key is omitted)."""

    user: UserInfo
    proxy_name: str
    proxy_type: str
    remote_addr: str

    def to_json(self) -> Dict[str, Any]:
        return {"user": self.user.to_json(), "proxy_name": self.proxy_name, "proxy_type": self.proxy_type,
                "remote_addr": self.remote_addr}

    def replaced(self, document: Any) -> "UserConnContent":
        where = "NewUserConnContent"
        return UserConnContent(_user(document, where), _text(document, "proxy_name", where),
                               _text(document, "proxy_type", where), _text(document, "remote_addr", where))


Content = Union[LoginContent, MessageContent, UserConnContent]


def request_target(op: str) -> str:
    """The query frp appends to the plugin's URL (``url.Values.Encode``: keys sorted)."""
    return f"?op={op}&version={API_VERSION}"


def request_body(op: str, content: Content) -> bytes:
    """The JSON body of one call, byte for byte as Go marshals it."""
    return m.encode_json({"version": API_VERSION, "op": op, "content": content.to_json()})


@dataclass(frozen=True)
class Reply:
    """A plugin's valid answer.  ``content`` is the raw JSON value (``None``: absent)."""

    reject: bool = False
    reject_reason: str = ""
    unchange: bool = False
    content: Any = None


def parse_reply(status: int, body: bytes) -> Reply:
    """The reply a plugin answered with HTTP ``status`` and ``body``.

    :raises ReplyError: not 200, not JSON, or a field of the wrong type (Go's json.Unmarshal
        into frp's Response struct fails on each of these).
    """
    if status != 200:
        raise ReplyError(f"do http request error code: {status}")
    try:
        document = json.loads(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as e:
        raise ReplyError(f"reply is not JSON: {e}") from None
    if document is None:
        return Reply()  # Go leaves the struct as it was: all zero
    if not isinstance(document, dict):
        raise ReplyError(f"reply is not a JSON object but {type(document).__name__}")
    values: Dict[str, Any] = {}
    for key, kind in (("reject", bool), ("reject_reason", str), ("unchange", bool)):
        value = _field(document, key)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise ReplyError(f"reply field {key!r} must be a JSON {'boolean' if kind is bool else 'string'}")
        values[key] = value
    return Reply(content=_field(document, "content"), **values)


def apply_reply(content: Content, reply: Reply) -> Optional[Content]:
    """The content after ``reply``: ``None`` if it rejects, else the same or the replacement.

    :raises ReplyError: the replacement does not decode as this operation's content.
    """
    if reply.reject:
        return None
    if reply.unchange:
        return content
    document = {} if reply.content is None else reply.content
    if not isinstance(document, dict):
        raise ReplyError(f"reply content must be a JSON object, not {type(document).__name__}")
    try:
        return content.replaced(document)
    except ProtocolError as e:
        raise ReplyError(f"reply content: {e}") from None
