"""frp's v1 stream encryption: AES-128-CFB keyed by PBKDF2 (wire-protocol.md §6.1, §7.3).

frp (golib ``crypto``) encrypts the control connection after ``LoginResp``, and work or
visitor connections when ``useEncryption`` is set, as a plain byte stream:

* key = PBKDF2-HMAC-SHA1(token or secret key, salt ``b"frp"``, 64 iterations, 16 bytes);
* each direction has its own random 16-byte IV, which the writer sends in clear immediately
  before its first ciphertext byte (lazily: a side that never writes never sends one);
* AES in CFB mode with 128-bit feedback, no padding, no MAC, one cipher state per direction
  for the life of the connection.

So the codec needs no framing: the decoder only has to collect the first 16 bytes it is
given (possibly over several calls) as the peer's IV.
"""

import functools
import hashlib
import os
from typing import Optional

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # cryptography < 47 has CFB only among the primitives
    from cryptography.hazmat.primitives.ciphers.modes import CFB

__all__ = ["IV_LENGTH", "derive_key", "AESCFBCodec"]

IV_LENGTH = 16

_SALT = b"frp"  # golib's default is "crypto"; frpc and frps both override it with "frp"
_ITERATIONS = 64
_KEY_LENGTH = 16


@functools.lru_cache(maxsize=64)
def derive_key(token: str) -> bytes:
    """The AES-128 key frp derives from ``token`` (``auth.token``, or a proxy's ``sk``).

    Cached: it is needed for every work connection and the set of tokens is tiny.
    """
    return hashlib.pbkdf2_hmac("sha1", token.encode("utf-8"), _SALT, _ITERATIONS, _KEY_LENGTH)


class AESCFBCodec:
    """A :class:`~frptw.wire.codec.StreamCodec` for frp's AES-CFB stream encryption.

    :param key: the AES key, normally :func:`derive_key` of the token.
    :param iv: our sending IV; a fresh random one when ``None`` (tests pass a fixed one).
    """

    __slots__ = ("_key", "_encryptor", "_iv_to_send", "_decryptor", "_peer_iv")

    def __init__(self, key: bytes, iv: Optional[bytes] = None) -> None:
        if iv is None:
            iv = os.urandom(IV_LENGTH)
        elif len(iv) != IV_LENGTH:
            raise ValueError(f"IV must be {IV_LENGTH} bytes, not {len(iv)}")
        self._key = key
        self._encryptor = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
        self._iv_to_send: Optional[bytes] = bytes(iv)
        self._decryptor = None
        self._peer_iv = bytearray()

    def encode(self, data: bytes) -> bytes:
        """Encrypt ``data``; the first non-empty call is prefixed with our IV."""
        if not data:
            return b""
        ciphertext = self._encryptor.update(data)
        if self._iv_to_send is not None:
            ciphertext = self._iv_to_send + ciphertext
            self._iv_to_send = None
        return ciphertext

    def decode(self, data: bytes) -> bytes:
        """Decrypt ``data``; the first 16 bytes ever received are the peer's IV.

        Never raises: CFB has no structure to violate (corruption shows up one layer up).
        """
        if self._decryptor is None:
            missing = IV_LENGTH - len(self._peer_iv)
            view = memoryview(data)
            self._peer_iv += view[:missing]
            if len(self._peer_iv) < IV_LENGTH:
                return b""
            self._decryptor = Cipher(algorithms.AES(self._key), CFB(bytes(self._peer_iv))).decryptor()
            data = view[missing:]
            if not data:
                return b""
        return self._decryptor.update(data)
