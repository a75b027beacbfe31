"""ETSI TS 102 232 PS-PDUs: what an agency's collector accepts (HI2 IRI and HI3
content), encoded and decoded with pycrate over the ASN.1 modules in
mediation/asn1/ (their README says which parts of which versions).

Why pycrate and not asn1tools: the ETSI modules identify each payload by a
RELATIVE-OID (iPCCObjId, iPIRIObjId, iPMMIRIObjId), a type asn1tools 0.169
cannot compile ("Type 'RELATIVE-OID' not found"); pycrate compiles the same
text and encodes it. The compiled spec is built once per process (about 0.1 s)
and every PDU object is used under one lock (pycrate objects hold their value).

    identity = Identity(liid="LEA-A-17", operator_id="p4tap", network_element_id="iap1")
    pdu = encode_cc(identity, cin=4242, seq=0, stamp=time.time(), packet=ip_bytes)
    decode(pdu)["pSHeader"]["sequenceNumber"]  # 0
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import logging
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

ASN1_DIR = Path(__file__).with_name("asn1")
ASN1_FILES = ("LI-PS-PDU.asn", "IPAccessPDU.asn", "IPMultimediaPDU.asn")

# itu-t(0) identified-organization(4) etsi(0) securityDomain(2) lawfulIntercept(2) li-ps(5) genHeader(1) version17(17)
LI_PS_DOMAIN_ID = (0, 4, 0, 2, 2, 5, 1, 17)
IPCC_OBJ_ID = (5, 3, 10, 2)      # li-ps(5) iPAccess(3) version10(10) iPCC(2)
IPIRI_OBJ_ID = (5, 3, 10, 1)     # ... iPIRI(1)
IPMMIRI_OBJ_ID = (5, 5, 6, 1)    # li-ps(5) iPMultimedia(5) version6(6) iPMMIRI(1)
KEEPALIVE_LIID = "-"             # a keep-alive belongs to no warrant

Direction = Literal["fromTarget", "toTarget", "indeterminate", "combined", "notApplicable"]


class EtsiError(ValueError):
    """A PS-PDU that cannot be encoded (a field out of the standard's range) or decoded."""


@functools.lru_cache(maxsize=1)
def _spec() -> Any:
    """Compile the ASN.1 text into pycrate runtime classes, once per process."""
    from pycrate_asn1c.asnproc import GLOBAL, PycrateGenerator, compile_text, generate_modules

    logging.getLogger("pycrate").setLevel(logging.WARNING)   # its compile report is not the MD's news
    GLOBAL.clear()
    compile_text([(ASN1_DIR / name).read_text() for name in ASN1_FILES])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p4tap_etsi_li.py"
        generate_modules(PycrateGenerator, str(path))
        spec = importlib.util.spec_from_file_location("p4tap_etsi_li", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    GLOBAL.clear()
    return module


_lock = threading.Lock()


def load() -> None:
    """Compile the spec now (about 0.1 s), not on the first packet an agency gets."""
    _spec()


def _pdu() -> Any:
    return _spec().LI_PS_PDU.PS_PDU


@dataclass(frozen=True)
class Identity:
    """Who a PDU is for and where it was intercepted (the PSHeader's fixed fields).

    `liid` is the warrant's LIID as the agency knows it; `network_element_id` names
    the IAP; `interception_point_id` (optional, at most 8 printable characters) the
    point within it."""

    liid: str
    operator_id: str
    network_element_id: str
    interception_point_id: str | None = None
    country: str | None = None      # authorizationCountryCode and deliveryCountryCode, 2 letters

    def check(self) -> None:
        for label, value, limit in (("liid", self.liid, 25), ("operator_id", self.operator_id, 16),
                                    ("network_element_id", self.network_element_id, 16)):
            if not 1 <= len(value.encode()) <= limit:
                raise EtsiError(f"{label} {value!r}: ETSI TS 102 232-1 allows 1..{limit} octets")
        if self.interception_point_id is not None and not 1 <= len(self.interception_point_id) <= 8:
            raise EtsiError(f"interception_point_id {self.interception_point_id!r}: 1..8 characters")
        if self.country is not None and (len(self.country) != 2 or not self.country.isalpha()):
            raise EtsiError(f"country {self.country!r}: two letters (ISO 3166-1)")


def _generalized(stamp: float) -> tuple:
    when = datetime.fromtimestamp(stamp, timezone.utc)
    return (f"{when.year:04d}", f"{when.month:02d}", f"{when.day:02d}", f"{when.hour:02d}",
            f"{when.minute:02d}", f"{when.second:02d}", f"{when.microsecond:06d}", "Z")


def _micro(stamp: float) -> dict:
    seconds = int(stamp)
    return {"seconds": seconds, "microSeconds": min(999999, int(round((stamp - seconds) * 1e6)))}


def _header(identity: Identity, cin: int, seq: int, stamp: float, liid: str | None = None) -> dict:
    network = {"operatorIdentifier": identity.operator_id.encode(),
               "networkElementIdentifier": identity.network_element_id.encode()}
    communication: dict = {"networkIdentifier": network, "communicationIdentityNumber": cin}
    header: dict = {"li-psDomainId": LI_PS_DOMAIN_ID,
                    "lawfulInterceptionIdentifier": (liid or identity.liid).encode()}
    if identity.country:
        header["authorizationCountryCode"] = identity.country
        communication["deliveryCountryCode"] = identity.country
    header.update({"communicationIdentifier": communication, "sequenceNumber": seq,
                   "timeStamp": _generalized(stamp)})
    if identity.interception_point_id:
        header["interceptionPointID"] = identity.interception_point_id
    header["microSecondTimeStamp"] = _micro(stamp)
    header["timeStampQualifier"] = "timeOfInterception"
    return header


def _encode(value: dict) -> bytes:
    with _lock:
        pdu = _pdu()
        try:
            pdu.set_val(value)
            return pdu.to_ber()
        except Exception as error:  # pycrate raises its own classes for every range or type check
            raise EtsiError(f"cannot encode PS-PDU: {error}") from None


def encode_cc(identity: Identity, cin: int, seq: int, stamp: float, packet: bytes,
              direction: Direction = "indeterminate") -> bytes:
    """One intercepted IP packet as a PS-PDU with an iPCC payload (TS 102 232-3).

    `stamp` is when the MD's kernel received it (the nearest to interception the MD knows)."""
    payload = {"payloadDirection": direction,
               "cCContents": ("iPCC", {"iPCCObjId": IPCC_OBJ_ID, "iPCCContents": ("iPPackets", packet)})}
    return _encode({"pSHeader": _header(identity, cin, seq, stamp),
                    "payload": ("cCPayloadSequence", [payload])})


def encode_keepalive(identity: Identity, seq: int, stamp: float, response: bool = False) -> bytes:
    """A keep-alive (or its response) PS-PDU: a tRIPayload with no warrant's LIID."""
    return _encode({"pSHeader": _header(identity, 0, seq, stamp, KEEPALIVE_LIID),
                    "payload": ("tRIPayload", ("keep-aliveResponse" if response else "keep-alive", 0))})


@dataclass(frozen=True)
class SessionIri:
    """An access session's event (IPIRI, TS 102 232-3): who, which address, when."""

    event: Literal["start", "update", "stop", "accept"]
    username: str
    address: str | None
    stamp: float
    octets_received: int | None = None
    octets_transmitted: int | None = None


@dataclass(frozen=True)
class CallIri:
    """A call's begin, answer or end (IPMMIRI, TS 102 232-5): the SIP message between two addresses."""

    event: Literal["begin", "answer", "continue", "end", "report"]
    source: str
    destination: str
    sip: bytes
    stamp: float


def _address(text: str) -> dict:
    address = ipaddress.ip_address(text)
    return {"iP-type": "iPV4" if address.version == 4 else "iPV6",
            "iP-value": ("iPBinaryAddress", address.packed), "iP-assignment": "notKnown"}


SESSION_EVENTS = {"start": ("sessionStart", "iRI-Begin", "startTime"),
                  "update": ("interimUpdate", "iRI-Continue", None),
                  "stop": ("sessionEnd", "iRI-End", "endTime"),
                  "accept": ("accessAccept", "iRI-Report", None)}


def _iri_contents(iri: SessionIri | CallIri) -> tuple[str, tuple]:
    if isinstance(iri, SessionIri):
        access, kind, when = SESSION_EVENTS[iri.event]
        contents: dict = {"accessEventType": access, "targetUsername": iri.username.encode(),
                          "internetAccessType": "undefined"}
        if iri.address is not None:
            contents["iPVersion"] = "iPV4" if ipaddress.ip_address(iri.address).version == 4 else "iPV6"
            contents["targetIPAddress"] = _address(iri.address)
        if when is not None:
            contents[when] = _generalized(iri.stamp)
        if iri.octets_received is not None:
            contents["octetsReceived"] = iri.octets_received
        if iri.octets_transmitted is not None:
            contents["octetsTransmitted"] = iri.octets_transmitted
        return kind, ("iPIRI", {"iPIRIObjId": IPIRI_OBJ_ID, "iPIRIContents": contents})
    message = {"iPSourceAddress": _address(iri.source), "iPDestinationAddress": _address(iri.destination),
               "sIPContent": iri.sip}
    kind = {"begin": "iRI-Begin", "answer": "iRI-Continue", "continue": "iRI-Continue", "end": "iRI-End",
            "report": "iRI-Report"}[iri.event]
    return kind, ("iPMMIRI", {"iPMMIRIObjId": IPMMIRI_OBJ_ID, "iPMMIRIContents": ("sIPMessage", message)})


CALL_EVENTS = {"call-begin": "begin", "call-answer": "answer", "call-update": "continue", "call-end": "end",
               "call-report": "report"}


def iri_from_record(record: Any) -> SessionIri | CallIri | None:
    """The MD's IRI record (mediation/iri.py's IriRecord, issue 15) as an ETSI
    IRI event: a RADIUS session's as IPIRI (TS 102 232-3), a SIP call's as
    IPMMIRI (TS 102 232-5: the SIP message itself, between the addresses it
    travelled). None for what neither can say: a call event with no message
    (a call ended by the MD's timeout) or without both addresses."""
    call_event = CALL_EVENTS.get(record.kind)
    if call_event is not None:
        message, source, destination = (getattr(record, name, None) for name in ("message", "peer", "peer_to"))
        if message is None or source is None or destination is None:
            return None
        sip = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else message
        return CallIri(call_event, source, destination, sip, record.stamp)
    event = {"session-start": "start", "session-update": "update", "session-stop": "stop",
             "access-accept": "accept"}.get(record.kind)
    if event is None:
        return None
    identity = record.identity or {}
    username = identity.get("radius_username") or identity.get("calling_station_id") or "unknown"
    hosts = [ipaddress.ip_interface(a).ip for a in record.addresses]
    address = next((str(h) for h in hosts if h.version == 4), str(hosts[0]) if hosts else None)
    return SessionIri(event, username, address, record.stamp)


def encode_iri(identity: Identity, cin: int, seq: int, iri: SessionIri | CallIri) -> bytes:
    """One IRI record as a PS-PDU with an iRIPayload (HI2)."""
    kind, contents = _iri_contents(iri)
    payload = {"iRIType": kind, "timeStamp": _generalized(iri.stamp), "iRIContents": contents}
    return _encode({"pSHeader": _header(identity, cin, seq, iri.stamp),
                    "payload": ("iRIPayloadSequence", [payload])})


def decode(data: bytes) -> dict:
    """The value of one PS-PDU (pycrate's form: dicts, CHOICEs as (name, value) tuples)."""
    with _lock:
        pdu = _pdu()
        try:
            pdu.from_ber(data)
        except Exception as error:
            raise EtsiError(f"not a PS-PDU: {error}") from None
        return pdu.get_val()


def pdu_length(buffer: bytes | bytearray | memoryview) -> int | None:
    """Octets of the first PDU in a TCP stream's `buffer`, or None until its header is complete.

    PS-PDUs on a TCP handover follow one another with no framing of their own; the
    BER tag and length (definite form, as p4tap and OpenLI send) say where each ends."""
    from pycrate_core.charpy import Charpy
    from pycrate_asn1rt.codecs import ASN1CodecBER

    head = bytes(buffer[:16])
    if len(head) < 2:
        return None
    char = Charpy(head)
    try:
        ASN1CodecBER.decode_tag(char)
        length = ASN1CodecBER.decode_len(char)
    except Exception:
        if len(head) < 16:
            return None     # the header is not all here yet
        raise EtsiError("not a BER PS-PDU on the stream") from None
    if length < 0:
        raise EtsiError("indefinite-length PS-PDU on the stream: not supported")
    return char._cur // 8 + length


def split(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete PDU at the start of `buffer`."""
    out = []
    while True:
        size = pdu_length(buffer)
        if size is None or size > len(buffer):
            return out
        out.append(bytes(buffer[:size]))
        del buffer[:size]
