"""SIP and SDP parsing on the messages real sipp runs sent, and variants."""
import pytest

pytest.importorskip("sipmessage")
pytest.importorskip("sdp_transform")
from scapy.layers.inet import IP, UDP  # noqa: E402

from mediation.sip_parse import Identity, MediaEndpoint, SipError, parse, sdp_media, split_stream  # noqa: E402
from tests.sip_support import sdp, sipp_call, variant  # noqa: E402


def test_sipp_call_parsed():
    invite, ringing, ok, ack, bye, bye_ok = (parse(m) for m in sipp_call())
    assert (invite.method, invite.cseq, invite.to_tag, invite.branch) == ("INVITE", 1, None, "z9hG4bK-31322-1-0")
    assert invite.identities == (Identity("bob", "example.test"), Identity("alice", "example.test"))
    assert invite.media == (MediaEndpoint("127.0.0.1", 6000, 6001),)
    assert (ringing.status, ringing.media, ringing.to_tag) == (180, None, "30953SIPpTag011")
    assert ok.media == (MediaEndpoint("127.0.0.2", 6000, 6001),) and ok.cseq_method == "INVITE"
    assert ack.media is None and bye.method == "BYE" and bye_ok.cseq_method == "BYE"
    assert len({m.call_id for m in (invite, ringing, ok, ack, bye, bye_ok)}) == 1


def test_identities_openli_headers_and_not_from():
    invite = sipp_call()[0]
    bare = parse(variant(invite, headers={"P-Asserted-Identity": None}))
    assert bare.identities == (Identity("bob", "example.test"),)   # From: alice is only a claim
    authed = parse(variant(invite, headers={
        "P-Asserted-Identity": None,
        "Proxy-Authorization": 'Digest username="carol", realm="Example.TEST", nonce="n", uri="sip:x", response="r"',
        "Remote-Party-ID": '"Dave" <tel:+15550100>;party=calling'}))
    assert Identity("carol", "example.test") in authed.identities
    assert Identity("+15550100") in authed.identities


def test_sdp_ports_rtcp_mux_rejected_hold_and_ipv6():
    assert sdp_media(sdp("192.0.2.1", 4000, "a=rtcp:4009\r\n")) == (MediaEndpoint("192.0.2.1", 4000, 4009),)
    assert sdp_media(sdp("192.0.2.1", 4000, "a=rtcp-mux\r\n")) == (MediaEndpoint("192.0.2.1", 4000, 4000),)
    assert sdp_media(sdp("192.0.2.1", 0)) == ()
    assert sdp_media(sdp("0.0.0.0", 4000)) == ()
    two = sdp("192.0.2.1", 4000) + b"m=video 5000 RTP/AVP 96\r\nc=IN IP6 2001:db8::5\r\n"
    assert sdp_media(two) == (MediaEndpoint("192.0.2.1", 4000, 4001), MediaEndpoint("2001:db8::5", 5000, 5001))


def test_endpoint_filters_select_its_rtp_and_rtcp_both_ways_only():
    received, sent = MediaEndpoint("192.0.2.1", 4000, 4001).filters()
    assert (received.dst, received.protocol, received.dst_ports) == ("192.0.2.1/32", 17, (4000, 4001))
    assert (sent.src, sent.protocol, sent.src_ports) == ("192.0.2.1/32", 17, (4000, 4001))

    def pkt(src, sport, dst, dport):
        return bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / b"x")
    ours = [pkt("198.51.100.1", 9, "192.0.2.1", 4000), pkt("198.51.100.1", 9, "192.0.2.1", 4001),
            pkt("192.0.2.1", 4000, "198.51.100.1", 9), pkt("192.0.2.1", 4001, "198.51.100.1", 9)]
    not_ours = [pkt("198.51.100.1", 9, "192.0.2.1", 4002), pkt("198.51.100.1", 4000, "192.0.2.2", 4000),
                pkt("192.0.2.1", 4002, "198.51.100.1", 4000), pkt("192.0.2.2", 4000, "198.51.100.1", 9)]
    assert all(received.matches(p) or sent.matches(p) for p in ours)
    assert not any(received.matches(p) or sent.matches(p) for p in not_ours)
    apart = MediaEndpoint("192.0.2.1", 4000, 4009).filters()
    assert [f.dst_ports for f in apart[:2]] == [(4000, 4000), (4009, 4009)]
    assert [f.src_ports for f in apart[2:]] == [(4000, 4000), (4009, 4009)]
    assert not any(f.matches(pkt("198.51.100.1", 9, "192.0.2.1", 4005)) for f in apart)
    assert not any(f.matches(pkt("192.0.2.1", 4005, "198.51.100.1", 9)) for f in apart)


def test_md_filter_source_ports_through_snmp_columns_and_config():
    """The MD's Filter carries citapStreamSourceL4PortMin/Max (columns 13, 14)
    out in its varbinds and back from the IAP's columns, and from md.toml."""
    from mediation.config import _filter
    from mediation.snmp_client import Filter, filter_from_columns, filter_varbinds

    f = Filter(src="192.0.2.1/32", protocol=17, src_ports=(4000, 4001))
    columns = {oid[-3]: value for oid, value in filter_varbinds(7, 1, f)}
    assert (int(columns[13]), int(columns[14])) == (4000, 4001) and 11 not in columns
    assert filter_from_columns(columns) == f
    assert _filter({"src": "192.0.2.1", "protocol": 17, "src_ports": [4000, 4001]}, "test") == f


def test_junk_is_a_one_line_error():
    for junk in (b"", b"\x00\x01garbage", b"HELLO world\r\n\r\n", b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"):
        with pytest.raises(SipError) as err:
            parse(junk)
        assert "\n" not in str(err.value)


def test_split_stream_frames_by_content_length():
    invite, ringing, ok = sipp_call("tcp")[:3]
    stream = b"\r\n\r\n" + invite + ringing + ok[:100]
    messages, rest = split_stream(stream)
    assert messages == [invite, ringing] and rest == ok[:100]
    messages, rest = split_stream(rest + ok[100:])
    assert messages == [ok] and rest == b""
    compact = invite.replace(b"Content-Length:", b"l:")
    assert split_stream(compact + b"\r\n")[0] == [compact]
    with pytest.raises(SipError):
        split_stream(variant(invite, headers={"Content-Length": None}).replace(b"Content-Length: 129\r\n", b""))
    with pytest.raises(SipError):
        split_stream(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_every_truncation_and_corruption_parses_or_is_a_sip_error():
    """Cut or damaged copies (a tap joined mid-message, a bit flipped) never raise anything else."""
    import random
    rng = random.Random(15)
    for raw in sipp_call() + sipp_call("tcp"):
        cases = [raw[:n] for n in range(0, len(raw), 7)]
        for _ in range(200):
            damaged = bytearray(raw)
            for _ in range(rng.randrange(1, 6)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            cases.append(bytes(damaged))
        for case in cases:
            try:
                parse(case)
            except SipError as err:
                assert "\n" not in str(err)


def test_split_stream_returns_what_it_framed_before_junk_then_resync_skips_it():
    from mediation.sip_parse import resync
    invite, ringing = sipp_call("tcp")[:2]
    messages, rest = split_stream(invite + b"junk\r\n\r\n" + ringing)
    assert messages == [invite] and rest.startswith(b"junk")
    with pytest.raises(SipError):
        split_stream(rest)
    assert split_stream(resync(rest)) == ([ringing], b"")
    assert split_stream(b"INVITE sip:bob@exa") == ([], b"INVITE sip:bob@exa")   # a start line still coming


def test_compact_headers_and_sdp_in_a_multipart_body():
    raw = sipp_call()[0]
    for long, short in ((b"Via:", b"v:"), (b"From:", b"f:"), (b"To:", b"t:"), (b"Call-ID:", b"i:"),
                        (b"Content-Type:", b"c:"), (b"Content-Length:", b"l:")):
        raw = raw.replace(long, short, 1)
    compact = parse(raw)
    assert compact.call_id == "1-31322@127.0.0.1" and compact.media == (MediaEndpoint("127.0.0.1", 6000, 6001),)
    isup = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00"
    body = (b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp("192.0.2.7", 4000) +
            b"\r\n--b1\r\nContent-Type: application/ISUP;version=itu-t92+\r\nContent-Disposition: signal;handling=optional"
            b"\r\n\r\n" + isup + b"\r\n--b1--\r\n")
    sip_i = parse(variant(sipp_call()[0], headers={"Content-Type": "multipart/mixed;boundary=b1"}, body=body))
    assert sip_i.media == (MediaEndpoint("192.0.2.7", 4000, 4001),)
