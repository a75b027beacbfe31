"""snmpv3.ber and snmpv3.usm, the fast path's codec, against pysnmp and pyasn1.

The fast path (mib_bridge/fast_path.py) and the mediation device's Session
read and write SNMPv3 messages without pyasn1. That is only safe if they put
on the wire exactly what pysnmp would, read back exactly what pysnmp would,
and refuse whatever pysnmp would refuse, so this module proves it
differentially, with no switch and no agent:

- varbind lists and scoped PDUs of every SNMP value type (edge values
  included, random ones from several seeds) encode to the same octets as
  pyasn1's encoder and decode to the same OIDs, values and classes as
  pysnmp's own decoding (v2c.apiPDU.get_varbinds, what the responder sees);
- anything the strict reader accepts after random mutation, pyasn1 accepts
  and reads the same way (the reader never "guesses");
- a message sealed by usm.seal is what pysnmp's USM services accept
  (pyasn1's SNMPv3Message, pysnmp's HMAC check and AES decryption),
  and a message signed and enciphered by pysnmp's services opens with usm;
  keys match RFC 3414 A.2 / RFC 7860 / RFC 3826 (and the Blumenthal and
  Reeder key extensions) computed here independently;
- pysnmp's whole command generator (TapClient(fast=False): discovery, then
  authPriv SET and GET) talks to an authoritative engine made of snmpv3.usm
  alone, both ways;
- no single-bit change of a sealed message opens, nor does it with other keys;
- Session (the fast client) takes no answer but the agent's own: another
  msgID, requestID, key or engine ID, or an unauthenticated answer, never
  makes a request succeed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import tag, univ
from pysnmp.entity import config as snmp_config
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message, ScopedPDU
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel, UsmSecurityParameters

from mediation.snmp_client import TapClient, TapClientError, mediation_varbinds
from mib_bridge.security import AUTH, PRIV
from snmpv3 import ber, usm
from snmpv3.ber import OCTET_STRING, SEQUENCE
from tests.snmp_support import AUTH_KEY, PRIV_KEY

SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]
Varbinds = list[tuple[tuple[int, ...], Any]]

# -- random SNMP values ----------------------------------------------------------------

INT32_EDGES = [-2**31, -2**31 + 1, -8388609, -8388608, -32769, -32768, -129, -128, -127, -1, 0, 1, 127, 128, 255,
               256, 32767, 32768, 8388607, 8388608, 2**31 - 1]
UINT32_EDGES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**23, 2**24 - 1, 2**31 - 1, 2**31, 2**32 - 1]
UINT64_EDGES = UINT32_EDGES + [2**32, 2**56 - 1, 2**56, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]
ARC_EDGES = [0, 1, 39, 40, 79, 80, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**31, 2**32 - 1]
OCTET_LENGTHS = [0, 1, 2, 127, 128, 255, 256, 1000]
SIMPLE = [rfc1905.unSpecified, rfc1902.Null(""), rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView]


def pick(rng: random.Random, edges: list[int], low: int, high: int) -> int:
    return rng.choice(edges) if rng.random() < 0.5 else rng.randint(low, high)


def random_oid(rng: random.Random) -> tuple[int, ...]:
    """First arc 0, 1 or 2 (second arc < 40 under 0 and 1, anything under 2), then large and small arcs."""
    first = rng.choice((0, 1, 2))
    second = rng.randrange(40) if first < 2 else pick(rng, ARC_EDGES, 0, 2**32 - 1)
    return (first, second) + tuple(pick(rng, ARC_EDGES, 0, 2**32 - 1) for _ in range(rng.randint(0, 14)))


def random_octets(rng: random.Random) -> bytes:
    n = 65535 if rng.random() < 0.02 else rng.choice(OCTET_LENGTHS) if rng.random() < 0.6 else rng.randint(0, 600)
    return rng.randbytes(n)


VALUE_MAKERS: list[Callable[[random.Random], Any]] = [
    lambda rng: rfc1902.Integer32(pick(rng, INT32_EDGES, -2**31, 2**31 - 1)),
    lambda rng: rfc1902.Integer(pick(rng, INT32_EDGES, -2**31, 2**31 - 1)),
    lambda rng: rfc1902.OctetString(random_octets(rng)),
    lambda rng: rfc1902.Bits(rng.randbytes(rng.randint(0, 8))),
    lambda rng: rfc1902.ObjectIdentifier(random_oid(rng)),
    lambda rng: rfc1902.IpAddress(rng.randbytes(4)),
    lambda rng: rfc1902.Counter32(pick(rng, UINT32_EDGES, 0, 2**32 - 1)),
    lambda rng: rfc1902.Unsigned32(pick(rng, UINT32_EDGES, 0, 2**32 - 1)),
    lambda rng: rfc1902.Gauge32(pick(rng, UINT32_EDGES, 0, 2**32 - 1)),
    lambda rng: rfc1902.TimeTicks(pick(rng, UINT32_EDGES, 0, 2**32 - 1)),
    lambda rng: rfc1902.Opaque(random_octets(rng)),
    lambda rng: rfc1902.Counter64(pick(rng, UINT64_EDGES, 0, 2**64 - 1)),
    lambda rng: rng.choice(SIMPLE),
]


def random_varbinds(rng: random.Random, most: int = 24) -> Varbinds:
    return [(random_oid(rng), rng.choice(VALUE_MAKERS)(rng)) for _ in range(rng.randint(0, most))]


def every_type_varbinds(rng: random.Random) -> Varbinds:
    """One varbind of each kind, so that every seed covers every type."""
    return [(random_oid(rng), make(rng)) for make in VALUE_MAKERS] + [(random_oid(rng), v) for v in SIMPLE]


# -- pyasn1's side -------------------------------------------------------------------------

PDU_CLASSES = {usm.GET: v2c.GetRequestPDU, usm.NEXT: v2c.GetNextRequestPDU, usm.RESPONSE: v2c.ResponsePDU,
               usm.SET: v2c.SetRequestPDU, usm.BULK: v2c.GetBulkRequestPDU, usm.REPORT: v2c.ReportPDU}


def pyasn1_pdu(kind: int, request_id: int, status: int, index: int, varbinds: Varbinds):
    pdu = PDU_CLASSES[kind]()
    api = v2c.apiBulkPDU if kind == usm.BULK else v2c.apiPDU
    api.set_defaults(pdu)
    api.set_request_id(pdu, request_id)
    if kind == usm.BULK:
        api.set_non_repeaters(pdu, status)
        api.set_max_repetitions(pdu, index)
    else:
        api.set_error_status(pdu, status)
        api.set_error_index(pdu, index)
    api.set_varbinds(pdu, varbinds)
    return pdu


def pyasn1_varbind_list(varbinds: Varbinds) -> bytes:
    """pyasn1's encoding of a VarBindList, as pysnmp builds it for a PDU."""
    return encoder.encode(v2c.apiPDU.get_varbind_list(pyasn1_pdu(usm.SET, 1, 0, 0, varbinds)))


def pyasn1_scoped(engine_id: bytes, name: bytes, pdu) -> bytes:
    scoped = ScopedPDU()
    scoped.setComponentByPosition(0, engine_id)
    scoped.setComponentByPosition(1, name)
    scoped.setComponentByPosition(2)
    scoped.getComponentByPosition(2).setComponentByType(pdu.tagSet, pdu)
    return encoder.encode(scoped)


def pysnmp_decoded_varbinds(varbind_list: bytes) -> Varbinds:
    """What pysnmp's own path hands the command responder for these
    varbinds: a SetRequest-PDU around them decoded with the rfc1905 schema,
    then v2c.apiPDU.get_varbinds."""
    pdu_bytes = ber.tlv(usm.SET, ber.encode_integer(1) + ber.encode_integer(0) + ber.encode_integer(0) + varbind_list)
    decoded, rest = decoder.decode(pdu_bytes, asn1Spec=rfc1905.PDUs())
    assert rest == b""
    return [(tuple(oid), value) for oid, value in v2c.apiPDU.get_varbinds(decoded.getComponent())]


def pysnmp_decoded_scoped(scoped: bytes) -> tuple[bytes, bytes, int, int, int, int, Varbinds]:
    decoded, rest = decoder.decode(scoped, asn1Spec=ScopedPDU())
    assert rest == b""
    pdu = decoded.getComponentByPosition(2).getComponent()
    kind = pdu.tagSet[0].tagClass | pdu.tagSet[0].tagFormat | pdu.tagSet[0].tagId
    varbinds = [(tuple(oid), value) for oid, value in v2c.apiPDU.get_varbinds(pdu)]
    return (bytes(decoded[0]), bytes(decoded[1]), kind, int(pdu[0]), int(pdu[1]), int(pdu[2]), varbinds)


# pyasn1's decoder gives these classes where snmpv3.ber gives the second of
# each pair (same tag, same value): the only class differences there are, and
# test_decoded_classes_are_exactly_pysnmps below shows them
def same_value(ours, theirs) -> bool:
    if ours.tagSet != theirs.tagSet:
        return False
    if theirs.tagSet in {v.tagSet for v in SIMPLE}:
        return True  # NULL-like: no value to compare
    return ours == theirs


def assert_same_varbinds(ours: Varbinds, theirs: Varbinds) -> None:
    assert len(ours) == len(theirs)
    for i, ((o_oid, o_value), (t_oid, t_value)) in enumerate(zip(ours, theirs)):
        assert o_oid == t_oid, (i, o_oid, t_oid)
        assert type(o_oid) is tuple
        assert same_value(o_value, t_value), (i, o_value, t_value)
        assert type(o_value) is type(t_value), (i, type(o_value), type(t_value))


# -- 1. varbinds and scoped PDUs: the same octets, the same objects ---------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_varbinds_encode_to_pyasn1s_octets(seed: int) -> None:
    rng = random.Random(seed)
    batches = [every_type_varbinds(rng), []] + [random_varbinds(rng) for _ in range(40)]
    for varbinds in batches:
        ours, theirs = ber.encode_varbinds(varbinds), pyasn1_varbind_list(varbinds)
        if ours != theirs:  # name the varbind that differs
            for oid, value in varbinds:
                one_ours, one_theirs = ber.encode_varbinds([(oid, value)]), pyasn1_varbind_list([(oid, value)])
                assert one_ours.hex() == one_theirs.hex(), (oid, value)
        assert ours == theirs


@pytest.mark.parametrize("seed", SEEDS)
def test_varbinds_decode_as_pysnmp_decodes_them(seed: int) -> None:
    rng = random.Random(seed)
    for varbinds in [every_type_varbinds(rng), []] + [random_varbinds(rng) for _ in range(40)]:
        data = pyasn1_varbind_list(varbinds)
        ours, start, stop = ber.read_varbinds(data, 0, len(data))
        assert (start, stop) == (0, len(data))
        assert_same_varbinds(ours, pysnmp_decoded_varbinds(data))


def test_decoded_classes_are_exactly_pysnmps() -> None:
    varbinds = [((1, 3, 6, 1, 1), rfc1902.Gauge32(7)), ((1, 3, 6, 1, 2), rfc1902.Unsigned32(7)),
                ((1, 3, 6, 1, 3), rfc1902.ObjectIdentifier((1, 3, 6, 1)))]
    data = pyasn1_varbind_list(varbinds)
    assert_same_varbinds(ber.read_varbinds(data, 0, len(data))[0], pysnmp_decoded_varbinds(data))


def test_encode_value_follows_each_values_own_tag() -> None:
    class Plain(univ.Integer):  # a class of our own: no other test has shown it to the cache
        pass

    class Text(univ.OctetString):
        pass

    counter_tag = tag.Tag(tag.tagClassApplication, tag.tagFormatSimple, 1)
    wrapped_tag = tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 3)
    for value in (Plain(5), Plain(5).subtype(implicitTag=counter_tag), Text(b"x"), Text(b"x").subtype(explicitTag=wrapped_tag)):
        assert ber.encode_value(value).hex() == encoder.encode(value).hex(), value.tagSet


def random_scoped(rng: random.Random) -> tuple[bytes, bytes, int, int, int, int, Varbinds]:
    kind = rng.choice(list(PDU_CLASSES))
    request_id = pick(rng, INT32_EDGES, -2**31, 2**31 - 1)
    if kind == usm.BULK:
        status, index = pick(rng, UINT32_EDGES[:11], 0, 2**31 - 1), pick(rng, UINT32_EDGES[:11], 0, 2**31 - 1)
    else:
        status, index = rng.randint(0, 18), pick(rng, [0, 1, 2, 127, 128, 255, 256], 0, 2**31 - 1)
    engine_id = rng.randbytes(rng.randint(5, 32))
    name = rng.choice([b"", rng.randbytes(rng.randint(1, 32))])
    return engine_id, name, kind, request_id, status, index, random_varbinds(rng, most=8)


@pytest.mark.parametrize("seed", SEEDS)
def test_scoped_pdus_match_pyasn1_both_ways(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        engine_id, name, kind, request_id, status, index, varbinds = random_scoped(rng)
        theirs = pyasn1_scoped(engine_id, name, pyasn1_pdu(kind, request_id, status, index, varbinds))
        ours = usm.scoped_pdu(engine_id, name, kind, request_id, status, index, ber.encode_varbinds(varbinds))
        assert ours == theirs, (kind, request_id, status, index)
        pdu = usm.parse_scoped(theirs)
        want = pysnmp_decoded_scoped(theirs)
        assert (pdu.context_engine_id, pdu.context_name, pdu.kind, pdu.request_id, pdu.error_status,
                pdu.error_index) == want[:6]
        assert_same_varbinds(pdu.varbinds, want[6])
        assert pdu.raw_varbinds == ber.encode_varbinds(varbinds)


# -- 1b. the strict reader never reads what pyasn1 would not ------------------------------------

def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not out:
            break
        i = rng.randrange(len(out))
        op = rng.random()
        if op < 0.5:
            out[i] ^= 1 << rng.randrange(8)
        elif op < 0.7:
            out[i] = rng.randrange(256)
        elif op < 0.85:
            del out[i]
        else:
            out.insert(i, rng.randrange(256))
    return bytes(out)


def ours_or_none(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ber.Malformed:
        return None


def theirs_or_none(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:  # pyasn1's errors, or its decoder leaving trailing data
        return None


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_mutated_varbinds_read_only_if_pyasn1_reads_them_alike(seed: int) -> None:
    rng = random.Random(seed)
    samples = [pyasn1_varbind_list(random_varbinds(rng, most=4)) for _ in range(40)]
    samples = [s for s in samples if len(s) < 4000]
    read_by_both = 0
    for _ in range(2500):
        data = mutate(rng, rng.choice(samples))

        def ours_read(data: bytes = data) -> Varbinds:
            varbinds, _, stop = ber.read_varbinds(data, 0, len(data))
            if stop != len(data):
                raise ber.Malformed("trailing")
            return varbinds

        ours = ours_or_none(ours_read)
        if ours is None:
            continue  # refused: pysnmp decides, nothing to compare
        theirs = theirs_or_none(lambda data=data: pysnmp_decoded_varbinds(data))
        assert theirs is not None, f"read by snmpv3.ber only: {data.hex()}"
        assert_same_varbinds(ours, theirs)
        read_by_both += 1
    assert read_by_both > 100  # the mutations did leave readable lists to compare


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_mutated_scoped_pdus_read_only_if_pyasn1_reads_them_alike(seed: int) -> None:
    rng = random.Random(seed)
    samples = []
    for _ in range(30):
        engine_id, name, kind, request_id, status, index, varbinds = random_scoped(rng)
        samples.append(pyasn1_scoped(engine_id, name, pyasn1_pdu(kind, request_id, status, index, varbinds[:3])))
    read_by_both = 0
    for _ in range(2000):
        data = mutate(rng, rng.choice(samples))
        pdu = ours_or_none(lambda data=data: usm.parse_scoped(data))
        if pdu is None:
            continue
        theirs = theirs_or_none(lambda data=data: pysnmp_decoded_scoped(data))
        assert theirs is not None, f"read by snmpv3.usm only: {data.hex()}"
        assert (pdu.context_engine_id, pdu.context_name, pdu.kind, pdu.request_id, pdu.error_status,
                pdu.error_index) == theirs[:6]
        assert_same_varbinds(pdu.varbinds, theirs[6])
        read_by_both += 1
    assert read_by_both > 50


@pytest.mark.parametrize("data", [
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x04, b"x" * 65536))),  # OCTET STRING > 65535
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x40, b"abc"))),  # IpAddress of 3
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x02, (2**31).to_bytes(5, "big")))),
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x46, (2**64).to_bytes(9, "big")))),
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x41, b"\xff"))),  # Counter32 -1
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x05, b"\x00"))),  # NULL with contents
    ber.tlv(0x30, ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x45, b"\x00"))),  # no such SNMP type
    ber.tlv(0x30, ber.tlv(0x30, ber.tlv(0x06, b"\x2b\x80\x01") + ber.tlv(0x05, b""))),  # non-minimal arc
    ber.tlv(0x30, ber.tlv(0x30, ber.tlv(0x06, b"\x2b\x86") + ber.tlv(0x05, b""))),  # unterminated arc
    bytes.fromhex("3080") + ber.tlv(0x30, ber.encode_oid((1, 3, 6)) + ber.tlv(0x05, b"")) + b"\x00\x00",  # indefinite
    bytes.fromhex("3f0130"),  # multi-octet tag
], ids=["octets-65536", "ip-3", "int32-over", "counter64-over", "counter32-negative", "null-contents", "tag-0x45",
        "oid-non-minimal", "oid-unterminated", "indefinite-length", "long-tag"])
def test_unusual_encodings_are_malformed(data: bytes) -> None:
    """What pysnmp refuses or what needs pyasn1's generality: ber refuses, so the message goes to pysnmp."""
    with pytest.raises(ber.Malformed):
        ber.read_varbinds(data, 0, len(data))


# -- 2. keys and whole messages -------------------------------------------------------------------

ENGINE_ID = bytes.fromhex("80001f8805") + b"wiretest"
COMBOS = [("SHA-224", "AES"), ("SHA-256", "AES"), ("SHA-256", "AES-192"), ("SHA-256", "AES-256"),
          ("SHA-384", "AES-256"), ("SHA-512", "AES"), ("SHA-512", "AES-256"), ("SHA-224", "AES-256"),
          ("SHA-224", "AES-256-C"), ("SHA-256", "AES-256-C"), ("SHA", "AES"), ("MD5", "AES"), ("SHA", "AES-256"),
          ("MD5", "AES-256"), ("SHA", "AES-192-C"), ("MD5", "AES-256-C"),
          ("SHA", "DES"), ("MD5", "DES"), ("SHA-256", "DES"), ("SHA", "3DES"), ("MD5", "3DES"), ("SHA-512", "3DES")]
HASHES = {"MD5": hashlib.md5, "SHA": hashlib.sha1, "SHA-224": hashlib.sha224, "SHA-256": hashlib.sha256, "SHA-384": hashlib.sha384, "SHA-512": hashlib.sha512}
DIGEST_LENGTHS = {"MD5": 12, "SHA": 12,  # RFC 3414 HMAC-MD5-96, HMAC-SHA-96
                  "SHA-224": 16, "SHA-256": 24, "SHA-384": 32, "SHA-512": 48}  # RFC 7860 usmHMAC*SHA*AuthProtocol
# what each privacy protocol takes of its localized key: AES its key; DES key
# and pre-IV (RFC 3414 8.1.1.1); 3DES three keys and pre-IV (Reeder 5.1.1.1)
PRIV_KEY_SIZES = {"AES": 16, "AES-192": 24, "AES-256": 32, "AES-192-C": 24, "AES-256-C": 32, "DES": 16, "3DES": 32}


def password_to_key(password: bytes, digest) -> bytes:
    """RFC 3414 A.2: the hash of 1 MB of the repeated password."""
    stream = (password * (1048576 // len(password) + 1))[:1048576]
    return digest(stream).digest()


def localize(key: bytes, engine_id: bytes, digest) -> bytes:
    return digest(key + engine_id + key).digest()


def rfc_keys(auth: str, priv: str, engine_id: bytes) -> tuple[bytes, bytes]:
    """(auth key, privacy key) localized to engine_id, computed from the RFCs
    alone: RFC 3414 A.2 / RFC 7860 for HMAC-SHA-2, RFC 3826 for AES-128, the
    Blumenthal draft's extension (Kul || H(Kul) ...) for AES-192/256, Reeder's
    (password-to-key again on Kul) for the -C variants and for 3DES."""
    digest, size = HASHES[auth], PRIV_KEY_SIZES[priv]
    auth_key = localize(password_to_key(AUTH_KEY.encode(), digest), engine_id, digest)
    priv_key = localize(password_to_key(PRIV_KEY.encode(), digest), engine_id, digest)
    while len(priv_key) < size:
        if priv.endswith("-C") or priv == "3DES":
            priv_key += localize(password_to_key(priv_key, digest), engine_id, digest)
        else:
            priv_key += digest(priv_key).digest()
    return auth_key, priv_key[:size]


def derive(auth: str, priv: str, engine_id: bytes = ENGINE_ID, user: bytes = b"md1") -> usm.Keys:
    keys = usm.Keys.derive(user, AUTH[auth], AUTH_KEY, PRIV[priv], PRIV_KEY, engine_id)
    assert keys is not None
    return keys


@pytest.mark.parametrize("auth,priv", COMBOS)
def test_keys_are_the_rfcs(auth: str, priv: str) -> None:
    keys = derive(auth, priv)
    assert (keys.auth, keys.priv) == rfc_keys(auth, priv, ENGINE_ID)
    assert keys.digest_length == DIGEST_LENGTHS[auth]
    assert keys.mac(b"message") == hmac.new(keys.auth, b"message", HASHES[auth]).digest()[:DIGEST_LENGTHS[auth]]


@pytest.mark.parametrize("auth", ["SHA", "MD5", "SHA-256"])
def test_authnopriv_users_get_authentication_keys_only(auth: str) -> None:
    """The agent authenticates authNoPriv users itself (replays refused before pysnmp)."""
    keys = usm.Keys.derive(b"md1", AUTH[auth], AUTH_KEY, None, None, ENGINE_ID)
    assert keys is not None and keys.priv == b"" and keys.auth == rfc_keys(auth, "AES", ENGINE_ID)[0]


def test_no_keys_without_authentication() -> None:
    assert usm.Keys.derive(b"md1", snmp_config.USM_AUTH_NONE, AUTH_KEY, snmp_config.USM_PRIV_NONE, PRIV_KEY,
                           ENGINE_ID) is None


def pysnmp_services(auth: str, priv: str):
    return SnmpUSMSecurityModel.AUTH_SERVICES[tuple(AUTH[auth])], SnmpUSMSecurityModel.PRIV_SERVICES[tuple(PRIV[priv])]


@pytest.mark.parametrize("auth,priv", COMBOS)
def test_sealed_message_is_what_pysnmps_usm_reads(auth: str, priv: str) -> None:
    rng = random.Random(f"{auth}{priv}")
    keys = derive(auth, priv)
    auth_service, priv_service = pysnmp_services(auth, priv)
    for _ in range(5):
        _, _, kind, request_id, status, index, varbinds = random_scoped(rng)
        scoped = usm.scoped_pdu(ENGINE_ID, b"", kind, request_id, status, index, ber.encode_varbinds(varbinds))
        msg_id, boots, now = rng.randint(0, 2**31 - 1), rng.randint(0, 2**31 - 1), rng.randint(0, 2**31 - 1)
        whole = usm.seal(keys, msg_id, 65507, 0x07, ENGINE_ID, boots, now, scoped)

        message, rest = decoder.decode(whole, asn1Spec=SNMPv3Message())
        assert rest == b""
        header = message["msgGlobalData"]
        assert (int(message["msgVersion"]), int(header["msgID"]), int(header["msgMaxSize"]),
                bytes(header["msgFlags"]), int(header["msgSecurityModel"])) == (3, msg_id, 65507, b"\x07", 3)
        params, rest = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
        assert rest == b""
        assert (bytes(params[0]), int(params[1]), int(params[2]), bytes(params[3])) == (ENGINE_ID, boots, now, b"md1")
        assert len(params[4]) == DIGEST_LENGTHS[auth] and len(params[5]) == 8
        # pysnmp's own digest check (RFC 7860 7.3.2) and decryption (RFC 3826 3.1.4, RFC 3414 8.1.1.3)
        auth_service.authenticate_incoming_message(univ.OctetString(keys.auth), params[4], whole)
        encrypted = message["msgData"].getComponent()
        assert message["msgData"].getName() == "encryptedPDU"
        salt = list(bytes(params[5])) if keys.cbc is None else univ.OctetString(bytes(params[5]))  # as each reads it
        clear = bytes(priv_service.decrypt_data(univ.OctetString(keys.priv), (boots, now, salt), encrypted))
        assert clear == keys.pad(scoped)  # CBC (DES, 3DES): zeros to whole blocks, RFC 3414 8.1.1.2
        got = pysnmp_decoded_scoped(scoped)
        assert got[:6] == (ENGINE_ID, b"", kind, request_id, status, index)
        assert_same_varbinds(ber.read_varbinds(ber.encode_varbinds(varbinds), 0, len(ber.encode_varbinds(varbinds)))[0],
                             got[6])


def pysnmp_sealed(auth: str, priv: str, msg_id: int, boots: int, now: int, scoped: bytes,
                  engine_id: bytes = ENGINE_ID, user: bytes = b"md1") -> bytes:
    """An authPriv message made by pyasn1 and pysnmp's USM services (their
    own key localization, AES encryption and HMAC placement), none of snmpv3."""
    auth_service, priv_service = pysnmp_services(auth, priv)
    engine = univ.OctetString(engine_id)
    auth_key = auth_service.localize_key(auth_service.hash_passphrase(AUTH_KEY.encode()), engine)
    priv_key = priv_service.localize_key(tuple(AUTH[auth]), priv_service.hash_passphrase(tuple(AUTH[auth]),
                                                                                          PRIV_KEY.encode()), engine)
    encrypted, salt = priv_service.encrypt_data(univ.OctetString(priv_key), (boots, now, None), scoped)
    params = UsmSecurityParameters()
    for i, value in enumerate((engine_id, boots, now, user, b"\x00" * DIGEST_LENGTHS[auth], bytes(salt))):
        params.setComponentByPosition(i, value)
    message = SNMPv3Message()
    message.setComponentByPosition(0, 3)
    header = message.setComponentByPosition(1).getComponentByPosition(1)
    for i, value in enumerate((msg_id, 65507, b"\x07", 3)):
        header.setComponentByPosition(i, value)
    message.setComponentByPosition(2, encoder.encode(params))
    message.setComponentByPosition(3).getComponentByPosition(3).setComponentByPosition(1, encrypted)
    return auth_service.authenticate_outgoing_message(univ.OctetString(auth_key), encoder.encode(message))


@pytest.mark.parametrize("auth,priv", COMBOS)
def test_pysnmp_sealed_message_opens_with_usm(auth: str, priv: str) -> None:
    rng = random.Random(f"open{auth}{priv}")
    keys = derive(auth, priv)
    for _ in range(5):
        _, _, kind, request_id, status, index, varbinds = random_scoped(rng)
        scoped = pyasn1_scoped(ENGINE_ID, b"", pyasn1_pdu(kind, request_id, status, index, varbinds))
        msg_id, boots, now = rng.randint(0, 2**31 - 1), rng.randint(0, 2**31 - 1), rng.randint(0, 2**31 - 1)
        whole = pysnmp_sealed(auth, priv, msg_id, boots, now, scoped)
        message = usm.parse(whole)
        assert (message.msg_id, message.max_size, message.flags, message.engine_id, message.boots, message.time,
                message.user) == (msg_id, 65507, 0x07, ENGINE_ID, boots, now, b"md1")
        assert whole[message.auth_offset:message.auth_offset + keys.digest_length] == message.auth_params
        assert usm.open_scoped(message, keys) == scoped
        pdu = usm.parse_scoped(scoped)
        assert (pdu.kind, pdu.request_id, pdu.error_status, pdu.error_index) == (kind, request_id, status, index)
        assert_same_varbinds(pdu.varbinds, pysnmp_decoded_scoped(scoped)[6])


def test_seal_then_parse_round_trip_and_fresh_salt() -> None:
    keys = derive("SHA-256", "AES")
    scoped = usm.scoped_pdu(ENGINE_ID, b"", usm.GET, 7, 0, 0, ber.encode_varbinds([((1, 3, 6, 1, 2, 1, 1, 5, 0),
                                                                                       rfc1905.unSpecified)]))
    first, second = (usm.seal(keys, 9, 484, 0x07, ENGINE_ID, 1, 200, scoped) for _ in range(2))
    assert first != second  # a new salt per message (RFC 3826 3.1.1.1): never the same keystream
    for whole in (first, second):
        message = usm.parse(whole)
        assert (message.msg_id, message.max_size, message.boots, message.time) == (9, 484, 1, 200)
        assert usm.open_scoped(message, keys) == scoped
    assert usm.parse(first).priv_params != usm.parse(second).priv_params


def test_discovery_message_is_pysnmps() -> None:
    """usm.plain (what Session sends first) decodes with pyasn1 as RFC 3414 4 describes: noAuthNoPriv, reportable,
    empty engine ID and user."""
    scoped = usm.scoped_pdu(b"", b"", usm.GET, 5, 0, 0, ber.encode_varbinds([]))
    whole = usm.plain(4, 65507, usm.REPORTABLE, scoped)
    message, rest = decoder.decode(whole, asn1Spec=SNMPv3Message())
    assert rest == b"" and bytes(message["msgGlobalData"]["msgFlags"]) == b"\x04"
    params, _ = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert [bytes(params[i]) for i in (0, 3, 4, 5)] == [b""] * 4 and (int(params[1]), int(params[2])) == (0, 0)
    assert message["msgData"].getName() == "plaintext" and encoder.encode(message["msgData"].getComponent()) == scoped
    parsed = usm.parse(whole)
    assert parsed.flags == 0x04 and parsed.data == scoped


# -- 3. tampering ------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth,priv", [("SHA-256", "AES"), ("SHA-512", "AES-256")])
def test_no_single_bit_flip_opens(auth: str, priv: str) -> None:
    keys = derive(auth, priv)
    scoped = usm.scoped_pdu(ENGINE_ID, b"", usm.SET, 77, 0, 0, ber.encode_varbinds(
        mediation_varbinds(5, ipaddress.ip_address("203.0.113.10"), 7000, datetime.now(timezone.utc))))
    whole = usm.seal(keys, 1234, 65507, 0x07, ENGINE_ID, 3, 1000, scoped)
    assert usm.open_scoped(usm.parse(whole), keys) == scoped
    for position in range(len(whole)):
        for bit in range(8):
            tampered = bytearray(whole)
            tampered[position] ^= 1 << bit
            with pytest.raises((ber.Malformed, usm.Rejected)):
                usm.open_scoped(usm.parse(bytes(tampered)), keys)


def test_other_keys_do_not_open() -> None:
    keys = derive("SHA-256", "AES")
    scoped = usm.scoped_pdu(ENGINE_ID, b"", usm.GET, 1, 0, 0, ber.encode_varbinds([]))
    message = usm.parse(usm.seal(keys, 1, 65507, 0x07, ENGINE_ID, 1, 1, scoped))
    for other in (derive("SHA-256", "AES", engine_id=ENGINE_ID + b"x"), derive("SHA-512", "AES"),
                  usm.Keys(b"md1", keys.auth[::-1], keys.digest, keys.digest_length, keys.priv)):
        with pytest.raises(usm.Rejected):
            usm.open_scoped(message, other)
    for flags in (0x04, 0x05, 0x06):  # not authPriv, whatever the digest says
        with pytest.raises(usm.Rejected):
            usm.open_scoped(usm.Message(**{**message.__dict__, "flags": flags}), keys)


# -- 2b. pysnmp's command generator against an engine made of snmpv3.usm -----------------------------

USM_STATS_UNKNOWN_ENGINE_IDS = (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)


class UsmAgent:
    """A minimal authoritative SNMPv3 engine built from snmpv3.usm only:
    answers discovery with an unknownEngineID Report (RFC 3414 4) and every
    authPriv request with a Response sealed by usm.seal: a SET echoes its
    varbinds, a GET reads `values`. Records the PDUs it opened."""

    def __init__(self, keys: dict[bytes, usm.Keys], engine_id: bytes, boots: int = 7,
                 forge: Callable[[UsmAgent, usm.Message, usm.Pdu, bytes], bytes] | None = None) -> None:
        self.keys, self.engine_id, self.boots, self.forge = keys, engine_id, boots, forge
        self.started = time.monotonic() - 5000
        self.values: dict[tuple[int, ...], Any] = {}
        self.requests: list[tuple[usm.Message, usm.Pdu]] = []
        self.errors: list[BaseException] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def now(self) -> int:
        return int(time.monotonic() - self.started)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            try:
                answer = self._answer(data)
            except BaseException as error:  # reported by the test, not lost in the thread
                self.errors.append(error)
                continue
            if answer is not None:
                self.sock.sendto(answer, peer)

    def _answer(self, data: bytes) -> bytes | None:
        message = usm.parse(data)
        if message.flags & 0x03 == 0:
            request = usm.parse_scoped(message.data)
            report = usm.scoped_pdu(self.engine_id, b"", usm.REPORT, request.request_id, 0, 0,
                                    ber.encode_varbinds([(USM_STATS_UNKNOWN_ENGINE_IDS, rfc1902.Counter32(1))]))
            return usm.plain(message.msg_id, 65507, 0, report, self.engine_id, self.boots, self.now())
        keys = self.keys[message.user]
        pdu = usm.parse_scoped(usm.open_scoped(message, keys))
        self.requests.append((message, pdu))
        if pdu.kind == usm.SET:
            varbinds = pdu.raw_varbinds
        else:
            varbinds = ber.encode_varbinds([(oid, self.values.get(oid, rfc1905.noSuchObject)) for oid, _ in pdu.varbinds])
        response = usm.scoped_pdu(self.engine_id, b"", usm.RESPONSE, pdu.request_id, 0, 0, varbinds)
        if self.forge is not None:
            return self.forge(self, message, pdu, varbinds)
        return usm.seal(keys, message.msg_id, 65507, usm.AUTH_PRIV, self.engine_id, self.boots, self.now(), response)

    def __enter__(self) -> UsmAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@contextmanager
def usm_agent(users: dict[str, tuple[str, str]], forge=None) -> Iterator[UsmAgent]:
    engine_id = bytes.fromhex("80001f8805") + os.urandom(6)
    keys = {name.encode(): derive(auth, priv, engine_id, name.encode()) for name, (auth, priv) in users.items()}
    with UsmAgent(keys, engine_id, forge=forge) as agent:
        yield agent


@pytest.mark.parametrize("auth,priv", [("SHA-256", "AES"), ("SHA-512", "AES-256"), ("SHA-384", "AES-192")])
def test_pysnmp_command_generator_against_a_usm_engine(auth: str, priv: str) -> None:
    """pysnmp discovers the usm engine, its authPriv SETs and GETs open with
    usm.open_scoped and read as sent, and it accepts usm.seal's Responses."""
    rng = random.Random(f"gen{auth}{priv}")
    with usm_agent({"md1": (auth, priv)}) as agent:
        client = TapClient("127.0.0.1", agent.port, "md1", AUTH_KEY, PRIV_KEY, auth_protocol=auth,
                           priv_protocol=priv, timeout=1.0, retries=1, fast=False)
        try:
            for _ in range(3):
                varbinds = [(oid, value) for oid, value in random_varbinds(rng, most=10)
                            if value.tagSet not in {v.tagSet for v in SIMPLE}] or [((1, 3, 6), rfc1902.Integer32(1))]
                echoed = client.set(varbinds)
                message, pdu = agent.requests[-1]
                assert pdu.kind == usm.SET and message.flags == 0x07 and message.user == b"md1"
                assert message.engine_id == agent.engine_id == pdu.context_engine_id and pdu.context_name == b""
                assert message.boots == agent.boots and abs(message.time - agent.now()) <= 1
                # what pysnmp sent is what it was given, as usm reads it; what it got back, as it reads it
                for (oid, value), (got_oid, got) in zip(varbinds, pdu.varbinds, strict=True):
                    assert tuple(oid) == got_oid and same_value(got, value)
                for (oid, value), (got_oid, got) in zip(varbinds, echoed, strict=True):
                    assert tuple(oid) == got_oid and same_value(got, value)
            agent.values[(1, 3, 6, 1, 2, 1, 1, 5, 0)] = rfc1902.OctetString(b"usm-engine")
            got = client.get((1, 3, 6, 1, 2, 1, 1, 5, 0), (1, 3, 6, 1, 2, 1, 1, 6, 0))
            assert got[0][1] == rfc1902.OctetString(b"usm-engine")
            assert got[1][1].tagSet == rfc1905.noSuchObject.tagSet
            assert agent.requests[-1][1].kind == usm.GET
        finally:
            client.close()
    assert not agent.errors


def test_session_against_a_usm_engine_and_a_wrong_key() -> None:
    """The fast client (Session) against the same engine: discovery, then a
    SET; with a wrong authentication passphrase the engine cannot open the
    request (it raises Rejected, so it answers nothing) and the client times
    out."""
    with usm_agent({"md1": ("SHA-256", "AES")}) as agent:
        with TapClient("127.0.0.1", agent.port, "md1", AUTH_KEY, PRIV_KEY, timeout=0.5, retries=0) as client:
            varbinds = mediation_varbinds(9, ipaddress.ip_address("2001:db8::1"), 7000,
                                          datetime.now(timezone.utc) + timedelta(hours=1))
            assert [(oid, bytes(v) if hasattr(v, "asOctets") else int(v)) for oid, v in client.set(varbinds)] == \
                [(oid, bytes(v) if hasattr(v, "asOctets") else int(v)) for oid, v in varbinds]
            assert client.session.engine_id == agent.engine_id and client.session.boots == agent.boots
        with TapClient("127.0.0.1", agent.port, "md1", "not-the-auth-key", PRIV_KEY, timeout=0.3, retries=0) as wrong:
            with pytest.raises(TapClientError, match="No SNMP response received before timeout"):
                wrong.set(varbinds)
    assert len(agent.requests) == 1
    assert all(isinstance(error, usm.Rejected) for error in agent.errors) and agent.errors


def forged(change: str) -> Callable[[UsmAgent, usm.Message, usm.Pdu, bytes], bytes]:
    """An answer to `message` that is not the agent's valid Response: one thing changed."""

    def answer(agent: UsmAgent, message: usm.Message, pdu: usm.Pdu, varbinds: bytes) -> bytes:
        keys, engine_id, msg_id, request_id = agent.keys[message.user], agent.engine_id, message.msg_id, pdu.request_id
        if change == "other msgID":
            msg_id = (msg_id + 1) % 2**31
        elif change == "other requestID":
            request_id = request_id + 1
        elif change == "other auth key":
            keys = dataclasses.replace(keys, auth=bytes(len(keys.auth)))
        elif change == "other priv key":
            keys = dataclasses.replace(keys, priv=bytes(len(keys.priv)))
        elif change == "other engine ID":
            engine_id = engine_id[:-1] + bytes((engine_id[-1] ^ 1,))
        scoped = usm.scoped_pdu(engine_id, b"", usm.RESPONSE, request_id, 0, 0, varbinds)
        if change == "unauthenticated":
            return usm.plain(msg_id, 65507, 0, scoped, engine_id, agent.boots, agent.now(), message.user)
        if change == "unauthenticated, malformed":  # anyone who sees the msgID can send this
            return usm.plain(msg_id, 65507, 0, ber.tlv(SEQUENCE, ber.tlv(OCTET_STRING, engine_id)), engine_id,
                             agent.boots, agent.now(), message.user)
        return usm.seal(keys, msg_id, 65507, usm.AUTH_PRIV, engine_id, agent.boots, agent.now(), scoped)

    return answer


@pytest.mark.parametrize("change", [
    "other msgID", "other requestID", "other auth key",
    "other priv key", "other engine ID", "unauthenticated", "unauthenticated, malformed"])
def test_session_takes_no_answer_but_the_agents_own(change: str) -> None:
    """Session (the fast client) against an engine whose Response has one
    thing wrong: the request never counts as done (no SET "succeeds" on a
    forged or misdirected answer); a timeout where the answer is not
    recognisably the agent's."""
    with usm_agent({"md1": ("SHA-256", "AES")}, forge=forged(change)) as agent:
        with TapClient("127.0.0.1", agent.port, "md1", AUTH_KEY, PRIV_KEY, timeout=0.3, retries=0) as client:
            with pytest.raises(TapClientError) as caught:
                client.set([((1, 3, 6, 1, 4, 1, 9, 9, 399, 1, 1, 2, 1, 13, 5), rfc1902.Integer32(6))])
    assert len(agent.requests) == 1 and not agent.errors
    if change in ("other msgID", "other auth key", "other engine ID"):
        assert str(caught.value) == "No SNMP response received before timeout"
