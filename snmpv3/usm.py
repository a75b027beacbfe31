"""SNMPv3 messages with USM authPriv (RFC 3412, 3414, 3826, 7860), read and
written without pyasn1: the fast path of the agent and of the mediation
device's client.

Only the message framing is ours (snmpv3.ber). Keys are derived by pysnmp's
own USM services (`hash_passphrase`, `localize_key`, so AES-192/256 key
extension is theirs too), the digest is the standard library's HMAC, the
cipher is `cryptography`'s AES-CFB with RFC 3826's IV, or its TripleDES-CBC
for DES and 3DES (RFC 3414 8, the Reeder draft), as in pysnmp.

What this accepts is narrow: version 3, USM, an HMAC-MD5-96, HMAC-SHA-96 or
HMAC-SHA-2 digest with AES, DES or 3DES privacy (or none: authNoPriv users
get keys too, so the agent can authenticate them and refuse their replays
before pysnmp sees them), a digest that verifies at the exact offset of
msgAuthenticationParameters, every integer within the range its ASN.1 type
gives. `parse` raises `Malformed` for anything else and `open` raises
`Rejected` when the digest does not verify; the agent then drops it, or
gives it to pysnmp for the Report USM sends (mib_bridge/fast_path.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # where cryptography keeps CFB since it called it decrepit; pysnmp looks there too
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB
try:  # likewise TripleDES, which USM's DES and 3DES privacy run on
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
from pyasn1.type.univ import OctetString
from pysnmp.proto.secmod.rfc3414.auth.hmacmd5 import HmacMd5
from pysnmp.proto.secmod.rfc3414.auth.hmacsha import HmacSha
from pysnmp.proto.secmod.rfc3414.priv.des import Des
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel
from pysnmp.proto.secmod.eso.priv.des3 import Des3
from pysnmp.proto.secmod.rfc3826.priv.aes import Aes
from pysnmp.proto.secmod.rfc7860.auth.hmacsha2 import HmacSha2

from snmpv3 import ber
from snmpv3.ber import INT32, OCTET_STRING, SEQUENCE, Malformed

USM = 3
AUTH, AUTH_PRIV, REPORTABLE = 0x01, 0x03, 0x04
MAX_SIZE = (484, 2**31 - 1)
UNSIGNED31 = (0, 2**31 - 1)
TIME_WINDOW = 150  # seconds, RFC 3414 3.2.7
COUNTER32 = 0x41
GET, NEXT, RESPONSE, SET, BULK, REPORT = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA8
ERROR_NAMES = ("noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType",
               "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
               "resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable",
               "inconsistentName")
ERROR_CODES = {name: code for code, name in enumerate(ERROR_NAMES)}


class Rejected(Exception):
    """The message does not authenticate, or cannot be deciphered, with the keys at hand."""


# How each privacy protocol cuts its localized key: (cipher key octets, pre-IV
# octets after them), or None for AES (RFC 3826: the IV is boots, time, salt).
# DES (RFC 3414 8.1.1.1) and 3DES-EDE (draft-reeder-snmpv3-usm-3desede 5.1.1.1)
# are CBC with IV = pre-IV XOR salt; single DES is TripleDES with one key
# thrice, which is DES.
_CBC_KEYS = {Des: (8, 8), Des3: (24, 8)}


@dataclass(frozen=True)
class Keys:
    """A user's keys localized to one authoritative engine."""

    user: bytes
    auth: bytes
    digest: Any  # hashlib constructor
    digest_length: int
    priv: bytes  # the localized privacy key, cut to what its protocol uses
    cbc: tuple[int, int] | None = None  # DES/3DES: (key octets, pre-IV octets); None: AES-CFB

    @classmethod
    def derive(cls, user: bytes, auth_protocol: tuple, auth_pass: str | bytes, priv_protocol: tuple | None,
               priv_pass: str | bytes | None, engine_id: bytes) -> Keys | None:
        """Keys through pysnmp's own USM services, or None if the protocols
        are not ones this fast path speaks (HMAC-MD5-96, HMAC-SHA-96 and
        HMAC-SHA-2 with AES, DES, 3DES or no privacy: then `priv` is empty)."""
        if not speaks(auth_protocol, priv_protocol):
            return None
        auth = SnmpUSMSecurityModel.AUTH_SERVICES[tuple(auth_protocol)]
        digest = _digest(auth, tuple(auth_protocol))
        engine = OctetString(engine_id)  # what pysnmp's localization reads
        auth_key = auth.localize_key(auth.hash_passphrase(_octets(auth_pass)), engine)
        if priv_protocol is None:
            return cls(user, bytes(auth_key), digest, auth.digest_length, b"")
        priv = SnmpUSMSecurityModel.PRIV_SERVICES[tuple(priv_protocol)]
        priv_key = bytes(priv.localize_key(tuple(auth_protocol), priv.hash_passphrase(tuple(auth_protocol),
                                                                                     _octets(priv_pass)), engine))
        cbc = _CBC_KEYS.get(type(priv))
        return cls(user, bytes(auth_key), digest, auth.digest_length,
                   priv_key[:sum(cbc) if cbc else priv.KEY_SIZE], cbc)

    def mac(self, message: bytes) -> bytes:
        return hmac.new(self.auth, message, self.digest).digest()[:self.digest_length]

    def cipher(self, boots: int, time: int, salt: bytes) -> Cipher:
        if self.cbc is None:
            iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + salt
            return Cipher(algorithms.AES(self.priv), CFB(iv))
        size, _ = self.cbc
        key = self.priv[:size] * (3 if size == 8 else 1)
        return Cipher(TripleDES(key), modes.CBC(bytes(a ^ b for a, b in zip(self.priv[size:], salt))))

    def pad(self, scoped: bytes) -> bytes:
        """CBC enciphers whole blocks: zeros after the scoped PDU, which
        every receiver drops (RFC 3414 8.1.1.2); CFB needs none."""
        return scoped if self.cbc is None else scoped + bytes(-len(scoped) % 8)


def speaks(auth_protocol: tuple, priv_protocol: tuple | None) -> bool:
    """Whether these (pysnmp protocol OIDs; no privacy: None) are ones this module speaks."""
    auth = SnmpUSMSecurityModel.AUTH_SERVICES.get(tuple(auth_protocol))
    if _digest(auth, tuple(auth_protocol)) is None:
        return False
    return priv_protocol is None or isinstance(SnmpUSMSecurityModel.PRIV_SERVICES.get(tuple(priv_protocol)),
                                               (Aes, Des, Des3))


def _digest(auth: Any, auth_protocol: tuple) -> Any:
    """The hashlib constructor of a USM authentication service, or None."""
    if isinstance(auth, HmacSha2):
        return HmacSha2.HASH_ALGORITHM[auth_protocol]
    if isinstance(auth, HmacSha):  # HMAC-SHA-96, RFC 3414 7
        return hashlib.sha1
    if isinstance(auth, HmacMd5):  # HMAC-MD5-96, RFC 3414 6
        return hashlib.md5
    return None


def _octets(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


@dataclass
class Message:
    """An SNMPv3 message's header and USM security parameters; `data` is
    the encrypted scoped PDU (authPriv) or the plaintext one."""

    msg_id: int
    max_size: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_params: bytes
    auth_offset: int  # where msgAuthenticationParameters' value starts in the whole message
    priv_params: bytes
    security_length: int  # octets of msgSecurityParameters' value
    data: bytes
    whole: bytes


def parse(whole: bytes) -> Message:
    """The header of an SNMPv3/USM message (nothing deciphered or checked yet)."""
    end = len(whole)
    start, stop = ber.expect(whole, 0, end, SEQUENCE)
    if stop != end:
        raise Malformed("data after the message")
    version, pos = ber.read_integer(whole, start, stop)
    if version != 3:
        raise Malformed("not SNMPv3")
    g_start, g_stop = ber.expect(whole, pos, stop, SEQUENCE)
    msg_id, p = ber.read_integer(whole, g_start, g_stop, UNSIGNED31)
    max_size, p = ber.read_integer(whole, p, g_stop, MAX_SIZE)
    flags, p = ber.read_octets(whole, p, g_stop)
    model, p = ber.read_integer(whole, p, g_stop, UNSIGNED31)
    if p != g_stop or len(flags) != 1 or model != USM:
        raise Malformed("header")
    s_start, s_stop = ber.expect(whole, g_stop, stop, OCTET_STRING)
    u_start, u_stop = ber.expect(whole, s_start, s_stop, SEQUENCE)
    if u_stop != s_stop:
        raise Malformed("security parameters")
    engine_id, p = ber.read_octets(whole, u_start, u_stop)
    boots, p = ber.read_integer(whole, p, u_stop, UNSIGNED31)
    time, p = ber.read_integer(whole, p, u_stop, UNSIGNED31)
    user, p = ber.read_octets(whole, p, u_stop)
    a_start, a_stop = ber.expect(whole, p, u_stop, OCTET_STRING)
    priv_params, p = ber.read_octets(whole, a_stop, u_stop)
    if p != u_stop or len(engine_id) > 32 or len(user) > 32:
        raise Malformed("security parameters")
    tag, d_start, d_stop = ber.read(whole, s_stop, stop)
    if d_stop != stop or tag not in (OCTET_STRING, SEQUENCE):
        raise Malformed("message data")
    return Message(msg_id, max_size, flags[0], engine_id, boots, time, user, whole[a_start:a_stop], a_start,
                   priv_params, s_stop - s_start, whole[d_start:d_stop] if tag == OCTET_STRING else whole[s_stop:stop], whole)


def authenticate(message: Message, keys: Keys) -> None:
    """Raise Rejected unless the message carries these keys' digest, at the
    exact place of msgAuthenticationParameters."""
    if not message.flags & AUTH or len(message.auth_params) != keys.digest_length:
        raise Rejected("not authenticated with these keys")
    whole, at, n = message.whole, message.auth_offset, keys.digest_length
    if not hmac.compare_digest(keys.mac(whole[:at] + bytes(n) + whole[at + n:]), message.auth_params):
        raise Rejected("wrong digest")


def open_scoped(message: Message, keys: Keys) -> bytes:
    """The scoped PDU of an authPriv message, after its digest verified.

    Octets after the scoped PDU's own encoding are dropped, as pysnmp's USM
    (its decoder's `rest`) and net-snmp drop them: pysnmp 4.4 pads what it
    enciphers with AES to a multiple of 16 octets, RFC 3826 or not."""
    if message.flags & AUTH_PRIV != AUTH_PRIV or len(message.priv_params) != 8:
        raise Rejected("not authPriv")
    authenticate(message, keys)
    return decipher(message, keys)


def decipher(message: Message, keys: Keys) -> bytes:
    """The scoped PDU of an authPriv message whose digest the caller verified."""
    if message.flags & AUTH_PRIV != AUTH_PRIV or len(message.priv_params) != 8 or not keys.priv:
        raise Rejected("not authPriv")
    if keys.cbc is not None and len(message.data) % 8:
        raise Rejected("not whole cipher blocks")  # RFC 3414 8.3.2 2: decryptionError
    decryptor = keys.cipher(message.boots, message.time, message.priv_params).decryptor()
    scoped = decryptor.update(message.data) + decryptor.finalize()
    try:
        return scoped[:ber.expect(scoped, 0, len(scoped), SEQUENCE)[1]]
    except Malformed:  # not even a SEQUENCE's frame: another key's output (RFC 3414 3.2.8: decryptionError)
        raise Rejected("decryption error") from None


@dataclass
class Pdu:
    context_engine_id: bytes
    context_name: bytes
    kind: int
    request_id: int
    error_status: int  # non-repeaters of a GETBULK
    error_index: int  # max-repetitions of a GETBULK
    varbinds: list[tuple[tuple[int, ...], Any]]
    raw_varbinds: bytes  # their encoding, as received


def parse_scoped(scoped: bytes, varbinds: bool = True) -> Pdu:
    """The scoped PDU; with `varbinds=False` the varbind list is only framed, not decoded."""
    end = len(scoped)
    start, stop = ber.expect(scoped, 0, end, SEQUENCE)
    if stop != end:
        raise Malformed("data after the scoped PDU")
    engine_id, p = ber.read_octets(scoped, start, stop)
    name, p = ber.read_octets(scoped, p, stop)
    kind, p_start, p_stop = ber.read(scoped, p, stop)
    if p_stop != stop or kind not in (GET, NEXT, RESPONSE, SET, BULK, REPORT):
        raise Malformed("PDU type")
    request_id, q = ber.read_integer(scoped, p_start, p_stop, INT32)
    status, q = ber.read_integer(scoped, q, p_stop, UNSIGNED31)
    index, q = ber.read_integer(scoped, q, p_stop, UNSIGNED31)
    if varbinds:
        decoded, v_start, v_stop = ber.read_varbinds(scoped, q, p_stop)
    else:
        decoded, (v_start, v_stop) = [], (q, ber.expect(scoped, q, p_stop, SEQUENCE)[1])
    if v_stop != p_stop:
        raise Malformed("data after the varbinds")
    return Pdu(engine_id, name, kind, request_id, status, index, decoded, scoped[v_start:v_stop])


def scoped_pdu(context_engine_id: bytes, context_name: bytes, kind: int, request_id: int, status: int,
               index: int, varbinds: bytes) -> bytes:
    pdu = ber.tlv(kind, ber.encode_integer(request_id) + ber.encode_integer(status) + ber.encode_integer(index)
                  + varbinds)
    return ber.tlv(SEQUENCE, ber.tlv(OCTET_STRING, context_engine_id) + ber.tlv(OCTET_STRING, context_name) + pdu)


def seal(keys: Keys, msg_id: int, max_size: int, flags: int, engine_id: bytes, boots: int, time: int,
         scoped: bytes) -> bytes:
    """A whole authPriv message: the scoped PDU encrypted under a fresh salt, then signed."""
    salt = os.urandom(8)
    encryptor = keys.cipher(boots, time, salt).encryptor()
    encrypted = encryptor.update(keys.pad(scoped)) + encryptor.finalize()
    n = keys.digest_length
    params_head = _params_head(engine_id, boots, time, keys.user)
    params_tail = ber.tlv(OCTET_STRING, salt)
    inner = params_head + ber.tlv(OCTET_STRING, bytes(n)) + params_tail
    security = ber.tlv(OCTET_STRING, ber.tlv(SEQUENCE, inner))
    header = _header(msg_id, max_size, flags)
    body = header + security + ber.tlv(OCTET_STRING, encrypted)
    whole = ber.tlv(SEQUENCE, body)
    # where the digest's zeros are: the message's own TLV header, the header
    # fields, the two TLV headers around the security parameters, the
    # parameters before it, and its own two-octet TLV header
    at = (len(whole) - len(body)) + len(header) + (len(security) - len(inner)) + len(params_head) + 2
    signed = bytearray(whole)
    signed[at:at + n] = keys.mac(whole)
    return bytes(signed)


def plain(msg_id: int, max_size: int, flags: int, scoped: bytes, engine_id: bytes = b"", boots: int = 0,
          time: int = 0, user: bytes = b"") -> bytes:
    """A noAuthNoPriv message (engine discovery, RFC 3414 4)."""
    params = _params_head(engine_id, boots, time, user) + ber.tlv(OCTET_STRING, b"") + ber.tlv(OCTET_STRING, b"")
    return ber.tlv(SEQUENCE, _header(msg_id, max_size, flags) + ber.tlv(OCTET_STRING, ber.tlv(SEQUENCE, params))
                   + scoped)


def report(msg_id: int, max_size: int, flags: int, engine_id: bytes, boots: int, time: int, user: bytes,
           request_id: int, context_engine_id: bytes, context_name: bytes, counter: tuple[int, ...],
           value: int) -> bytes:
    """An unauthenticated Report (RFC 3412 7.1.3, RFC 3414 3.2): one varbind,
    the usmStats counter the refusal incremented, with its new value."""
    varbind = ber.tlv(SEQUENCE, ber.encode_oid(counter) + ber.encode_integer(value, COUNTER32))
    scoped = scoped_pdu(context_engine_id, context_name, REPORT, request_id, 0, 0, ber.tlv(SEQUENCE, varbind))
    return plain(msg_id, max_size, flags, scoped, engine_id, boots, time, user)


def _header(msg_id: int, max_size: int, flags: int) -> bytes:
    """msgVersion and msgGlobalData (RFC 3412 6)."""
    return ber.encode_integer(3) + ber.tlv(SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(max_size)
                                           + ber.tlv(OCTET_STRING, bytes((flags,))) + ber.encode_integer(USM))


def _params_head(engine_id: bytes, boots: int, time: int, user: bytes) -> bytes:
    """UsmSecurityParameters up to msgAuthenticationParameters (RFC 3414 2.4)."""
    return (ber.tlv(OCTET_STRING, engine_id) + ber.encode_integer(boots) + ber.encode_integer(time)
            + ber.tlv(OCTET_STRING, user))
