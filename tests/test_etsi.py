"""ETSI TS 102 232 PS-PDUs (mediation/etsi.py): round trips through the ASN.1
modules, and what an independent decoder (libtrace + libwandder's
`tracepktdump`, as OpenLI users check handovers) reads in them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mediation import etsi

IDENTITY = etsi.Identity("LEA-A-WARRANT-17", "p4tap-op", "iap1", "ip1", "NZ")
# An IPv4/UDP packet from the subject 192.0.2.10 to 198.51.100.10 (ports 1234 -> 5000).
PACKET = bytes.fromhex("4500001c000100004011f7c9c000020ac633640a04d2138800080000")


def _tracepktdump() -> str | None:
    """tracepktdump built with libwandder: P4TAP_TRACEPKTDUMP, PATH, or the usual local prefixes."""
    for candidate in (os.environ.get("P4TAP_TRACEPKTDUMP"), shutil.which("tracepktdump"),
                      "/work/ext/prefix/bin/tracepktdump", "/opt/libtrace-local/bin/tracepktdump"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def test_cc_round_trip_keeps_every_header_field_and_the_packet() -> None:
    stamp = 1796564035.893590
    pdu = etsi.decode(etsi.encode_cc(IDENTITY, cin=4242, seq=7, stamp=stamp, packet=PACKET, direction="fromTarget"))
    header = pdu["pSHeader"]
    assert header["li-psDomainId"] == etsi.LI_PS_DOMAIN_ID
    assert header["lawfulInterceptionIdentifier"] == b"LEA-A-WARRANT-17"
    assert header["authorizationCountryCode"] == "NZ"
    assert header["communicationIdentifier"] == {
        "networkIdentifier": {"operatorIdentifier": b"p4tap-op", "networkElementIdentifier": b"iap1"},
        "communicationIdentityNumber": 4242, "deliveryCountryCode": "NZ"}
    assert header["sequenceNumber"] == 7
    assert header["timeStamp"] == ("2026", "12", "06", "13", "33", "55", "893590", "Z")
    assert header["microSecondTimeStamp"] == {"seconds": 1796564035, "microSeconds": 893590}
    assert header["interceptionPointID"] == "ip1"
    kind, payloads = pdu["payload"]
    assert kind == "cCPayloadSequence" and len(payloads) == 1
    assert payloads[0]["payloadDirection"] == "fromTarget"
    assert payloads[0]["cCContents"] == ("iPCC", {"iPCCObjId": etsi.IPCC_OBJ_ID,
                                                  "iPCCContents": ("iPPackets", PACKET)})


def test_keepalive_and_its_response_round_trip() -> None:
    for response, name in ((False, "keep-alive"), (True, "keep-aliveResponse")):
        pdu = etsi.decode(etsi.encode_keepalive(IDENTITY, seq=3, stamp=time.time(), response=response))
        assert pdu["payload"] == ("tRIPayload", (name, 0))
        assert pdu["pSHeader"]["sequenceNumber"] == 3
        assert pdu["pSHeader"]["lawfulInterceptionIdentifier"] == etsi.KEEPALIVE_LIID.encode()


@pytest.mark.parametrize("event,access,kind", [("start", "sessionStart", "iRI-Begin"),
                                               ("update", "interimUpdate", "iRI-Continue"),
                                               ("accept", "accessAccept", "iRI-Report")])
def test_every_session_event_has_its_access_event_and_iri_type(event, access, kind) -> None:
    pdu = etsi.decode(etsi.encode_iri(IDENTITY, 9, 0, etsi.SessionIri(event, "alice", None, time.time())))
    _, [payload] = pdu["payload"]
    assert payload["iRIType"] == kind
    contents = payload["iRIContents"][1]["iPIRIContents"]
    assert contents["accessEventType"] == access and "targetIPAddress" not in contents


def test_session_iri_round_trip() -> None:
    iri = etsi.SessionIri("stop", "alice@isp", "2001:db8::10", 1796564035.5, octets_received=10, octets_transmitted=2**40)
    pdu = etsi.decode(etsi.encode_iri(IDENTITY, cin=9, seq=1, iri=iri))
    kind, [payload] = pdu["payload"]
    assert kind == "iRIPayloadSequence" and payload["iRIType"] == "iRI-End"
    name, ipiri = payload["iRIContents"]
    assert name == "iPIRI" and ipiri["iPIRIObjId"] == etsi.IPIRI_OBJ_ID
    contents = ipiri["iPIRIContents"]
    assert contents["accessEventType"] == "sessionEnd"
    assert contents["targetUsername"] == b"alice@isp"
    assert contents["targetIPAddress"]["iP-value"] == ("iPBinaryAddress", bytes.fromhex("20010db8" + "00" * 11 + "10"))
    assert (contents["octetsReceived"], contents["octetsTransmitted"]) == (10, 2**40)
    assert contents["endTime"][:6] == ("2026", "12", "06", "13", "33", "55")


def test_call_iri_round_trip() -> None:
    sip = b"INVITE sip:bob@example.net SIP/2.0\r\nCall-ID: 1@192.0.2.10\r\n\r\n"
    pdu = etsi.decode(etsi.encode_iri(IDENTITY, cin=11, seq=0,
                                      iri=etsi.CallIri("answer", "192.0.2.10", "198.51.100.20", sip, time.time())))
    _, [payload] = pdu["payload"]
    assert payload["iRIType"] == "iRI-Continue"
    name, ipmmiri = payload["iRIContents"]
    assert name == "iPMMIRI" and ipmmiri["iPMMIRIObjId"] == etsi.IPMMIRI_OBJ_ID
    kind, message = ipmmiri["iPMMIRIContents"]
    assert kind == "sIPMessage" and message["sIPContent"] == sip
    assert message["iPDestinationAddress"]["iP-value"] == ("iPBinaryAddress", bytes([198, 51, 100, 20]))


def test_a_sip_call_record_goes_to_hi2_as_ipmmiri_with_its_message_byte_for_byte() -> None:
    """The MD's SIP half (mediation/sip_handler.py) keeps the message and the
    addresses it travelled between; HI2 hands it over as TS 102 232-5 IPMMIRI.
    A non-UTF-8 octet survives the record's text form (surrogateescape)."""
    from mediation.iri import IriRecord

    sip = b"SIP/2.0 200 OK\r\nCall-ID: 7@192.0.2.10\r\nSubject: caf\xe9\r\n\r\n"
    record = IriRecord(4243, time.time(), "sip", "call-answer", {"sip_user": "alice"}, (), "7@192.0.2.10",
                       peer="198.51.100.20", peer_to="192.0.2.10", reason="200 INVITE",
                       message=sip.decode("utf-8", "surrogateescape"))
    record = IriRecord.from_json(record.to_json())  # as the receiver's queue and a file agency see it
    iri = etsi.iri_from_record(record)
    assert isinstance(iri, etsi.CallIri) and iri.event == "answer"
    _, [payload] = etsi.decode(etsi.encode_iri(IDENTITY, cin=4243, seq=0, iri=iri))["payload"]
    assert payload["iRIType"] == "iRI-Continue"
    _, ipmmiri = payload["iRIContents"]
    kind, message = ipmmiri["iPMMIRIContents"]
    assert kind == "sIPMessage" and message["sIPContent"] == sip
    assert message["iPSourceAddress"]["iP-value"] == ("iPBinaryAddress", bytes([198, 51, 100, 20]))
    assert message["iPDestinationAddress"]["iP-value"] == ("iPBinaryAddress", bytes([192, 0, 2, 10]))
    ended = IriRecord(4243, time.time(), "sip", "call-end", {}, (), "7@192.0.2.10", reason="timeout")
    assert etsi.iri_from_record(ended) is None  # no message: nothing IPMMIRI could carry


@pytest.mark.parametrize("cin,seq", [(-1, 0), (2**32, 0), (0, 2**32)])
def test_out_of_range_numbers_are_refused_with_one_line(cin: int, seq: int) -> None:
    with pytest.raises(etsi.EtsiError) as error:
        etsi.encode_cc(IDENTITY, cin=cin, seq=seq, stamp=time.time(), packet=PACKET)
    assert "\n" not in str(error.value)


def test_identity_fields_beyond_the_standard_are_refused() -> None:
    with pytest.raises(etsi.EtsiError, match="liid"):
        etsi.Identity("L" * 26, "op", "ne").check()
    with pytest.raises(etsi.EtsiError, match="interception_point_id"):
        etsi.Identity("L", "op", "ne", "123456789").check()


def test_garbage_is_not_a_pdu() -> None:
    with pytest.raises(etsi.EtsiError):
        etsi.decode(b"\x30\x03\x02\x01\x05")


def test_a_stream_splits_into_its_pdus_whatever_the_chunking() -> None:
    pdus = [etsi.encode_cc(IDENTITY, 4242, n, time.time(), PACKET * (n % 5 + 1) * 30) for n in range(20)]
    pdus.insert(5, etsi.encode_keepalive(IDENTITY, 0, time.time()))
    stream = b"".join(pdus)
    for chunk in (1, 7, 100, 4096):
        buffer, out = bytearray(), []
        for offset in range(0, len(stream), chunk):
            buffer += stream[offset:offset + chunk]
            out += etsi.split(buffer)
        assert out == pdus and not buffer


def test_libtrace_decodes_what_the_md_sends(tmp_path: Path) -> None:
    """libwandder (OpenLI's decoder, C, hand-written from the standard) names every field p4tap sends."""
    tool = _tracepktdump()
    if tool is None:
        pytest.skip("tracepktdump (libtrace built with libwandder) not found: set P4TAP_TRACEPKTDUMP "
                    "or build LibtraceTeam/libwandder + libtrace outside the repo (README, Mediation device)")
    stamp = 1796564035.25
    records = etsi.encode_cc(IDENTITY, 4242, 5, stamp, PACKET, "toTarget") + \
        etsi.encode_keepalive(IDENTITY, 6, stamp) + \
        etsi.encode_iri(IDENTITY, 4243, 0, etsi.SessionIri("start", "alice", "192.0.2.10", stamp)) + \
        etsi.encode_iri(IDENTITY, 4244, 0, etsi.CallIri("begin", "192.0.2.10", "2001:db8::1", b"INVITE x", stamp))
    path = tmp_path / "handover.etsi"
    path.write_bytes(records)
    out = subprocess.run([tool, f"etsifile:{path}"], capture_output=True, text=True, timeout=60).stdout
    lines = [line.split("ETSILI:", 1)[1].strip() for line in out.splitlines() if "ETSILI:" in line]
    for expected in ("lawfulInterceptionIdentifier: LEA-A-WARRANT-17", "authorizationCountryCode: NZ",
                     "operatorIdentifier: p4tap-op", "networkElementIdentifier: iap1",
                     "communicationIdentityNumber: 4242", "deliveryCountryCode: NZ", "sequenceNumber: 5",
                     "timeStamp: 20261206133355.250000Z", "interceptionPointID: ip1", "seconds: 1796564035",
                     "microSeconds: 250000", "payloadDirection: toTarget", "iPCCObjId: .5.3.10.2",
                     "keep-alive:", "sequenceNumber: 6", "iRIType: IRI-Begin", "iPIRIObjId: .5.3.10.1",
                     "accessEventType: sessionStart", "targetUsername: alice", "iPBinaryAddress: 192.0.2.10",
                     "communicationIdentityNumber: 4243", "iPMMIRIObjId: .5.5.6.1",
                     "iPBinaryAddress: 2001:db8::1"):
        assert expected in lines, f"{expected!r} not in tracepktdump's decoding:\n{out}"
    # libtrace hands the iPCC's packet to its IP decoder: the subject's datagram, byte for byte.
    assert "IP: Source 192.0.2.10 Destination 198.51.100.10" in out
    assert "UDP: Source 1234 Dest 5000" in out
    assert out.count("pS-PDU:") == 4
