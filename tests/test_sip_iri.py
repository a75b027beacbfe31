"""The SIP IRI function as the MD's dispatcher calls it: copied IP packets in."""
import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP, UDP  # noqa: E402

from mediation.sip_calls import SipTarget  # noqa: E402
from mediation.sip_iri import SipIriFunction  # noqa: E402
from mediation.sip_parse import MediaEndpoint  # noqa: E402
from tests.sip_support import sipp_call, variant  # noqa: E402

A, B = "192.0.2.10", "198.51.100.20"


def _ip(raw: bytes, forward: bool) -> bytes:
    src, dst = (A, B) if forward else (B, A)
    return bytes(IP(src=src, dst=dst) / UDP(sport=5060, dport=5060) / raw)


def test_target_call_in_media_and_non_target_call_counted_not_kept():
    function, target = SipIriFunction(), SipTarget(7, "bob")
    other = [variant(m, headers={"Call-ID": "other", "To": "dave <sip:dave@example.test>",
                                 "P-Asserted-Identity": None}) for m in sipp_call()[:3]]
    rtp = bytes(IP(src=A, dst=B) / UDP(sport=6000, dport=6000) / (b"\x80\x08" + bytes(170)))
    changes, iri = [], []
    for n, raw in enumerate(sipp_call()):
        for packet in (_ip(raw, n in (0, 3, 4)), _ip(other[n], n != 1 and n != 2) if n < 3 else rtp):
            update = function.feed(packet, [target], float(n))
            changes += update.changes
            iri += update.iri
    assert [(c.op, c.endpoint) for c in changes] == [
        ("provision", MediaEndpoint("127.0.0.1", 6000, 6001)), ("provision", MediaEndpoint("127.0.0.2", 6000, 6001)),
        ("remove", MediaEndpoint("127.0.0.1", 6000, 6001)), ("remove", MediaEndpoint("127.0.0.2", 6000, 6001))]
    assert [i.kind for i in iri] == ["begin", "continue", "continue", "continue", "end", "report"]
    assert function.status() == {"sip_calls": 0, "sip_media_taps": 0, "sip_not_sip": 3, "sip_dropped_packets": 0}
    assert "other" not in function.calls.ended   # the non-target call left nothing behind
    assert function.expire(1e9).changes == [] and not function.calls.ended
