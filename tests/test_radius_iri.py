"""RADIUS decoding and identity matching on packets pyrad builds."""
import pytest

pytest.importorskip("pyrad")
from pyrad.packet import AcctPacket  # noqa: E402

from mediation import radius_iri  # noqa: E402


def _acct(status: str, user: str, ip: str) -> bytes:
    pkt = AcctPacket(dict=radius_iri._dict(), secret=b"s3cret")
    pkt["User-Name"] = user
    pkt["Acct-Status-Type"] = status
    pkt["Framed-IP-Address"] = ip
    pkt["Calling-Station-Id"] = "00-11-22"
    return pkt.RequestPacket()


def test_start_of_target_decoded_and_matched():
    ev = radius_iri.decode(_acct("Start", "alice", "192.0.2.10"))
    assert ev is not None and ev.kind == "start" and ev.framed_ip == "192.0.2.10"
    t = radius_iri.IdentityTarget(cccid=7, radius_username="alice")
    assert radius_iri.target_of(ev, [t]) is t


def test_non_target_not_matched_and_garbage_ignored():
    ev = radius_iri.decode(_acct("Stop", "bob", "192.0.2.11"))
    assert ev.kind == "stop"
    assert radius_iri.target_of(ev, [radius_iri.IdentityTarget(7, radius_username="alice")]) is None
    assert radius_iri.decode(b"\x00junk") is None
