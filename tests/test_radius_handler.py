"""The RADIUS handler on the bytes radclient sends, wrapped as the IAP copies them: what it asks of the
keeper (through mediation/derived_taps.py) and the IRI it emits, per warrant; no switch here (the keeper's
side: tests/test_md_radius.py; end to end: tests/test_e2e_radius.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from controller.toml_fields import Endpoint
from mediation.derived_taps import DerivedTaps
from mediation.radius_handler import RadiusHandler
from mediation.radius_iri import IdentityTarget
from tests.radius_support import accounting, needs_radclient, radclient_bytes

NAS, SERVER = "192.0.2.40", "192.0.2.50"


def copied(radius: bytes) -> bytes:
    return bytes(IP(src=NAS, dst=SERVER) / UDP(sport=40000, dport=1813) / Raw(radius))


def handler(targets):
    asked, records = [], []
    taps = DerivedTaps(lambda spec: asked.append(("want", spec)), lambda cccid: asked.append(("unwant", cccid)),
                       Endpoint("203.0.113.10", 7000))
    return RadiusHandler(targets, taps, records.append), asked, records


@needs_radclient
def test_two_warrants_on_one_person_each_get_their_tap_and_iri_and_a_move_is_one_change():
    lea_a, lea_b = IdentityTarget(4242, radius_username="alice"), IdentityTarget(5151, radius_username="alice")
    radius, asked, records = handler([lea_a, lea_b])
    radius.handle(1.0, copied(radclient_bytes(accounting("Start", "bob", "192.0.2.30"))))
    assert asked == [] and records == [], "a non-target: nothing asked, nothing emitted"
    radius.handle(2.0, copied(radclient_bytes(accounting("Start", "alice", "192.0.2.10"))))
    assert [(op, spec.content_id, [(f.src, f.dst) for f in spec.filters]) for op, spec in asked] == [
        ("want", 4242, [("192.0.2.10/32", None), (None, "192.0.2.10/32")]),
        ("want", 5151, [("192.0.2.10/32", None), (None, "192.0.2.10/32")])]
    assert [(r.cccid, r.kind, r.peer) for r in records] == [(4242, "session-start", NAS), (5151, "session-start", NAS)]
    asked.clear()
    radius.handle(3.0, copied(radclient_bytes(accounting("Interim-Update", "alice", "192.0.2.11"))))
    assert [(op, spec.content_id, spec.filters[0].src) for op, spec in asked] == [
        ("want", 4242, "192.0.2.11/32"), ("want", 5151, "192.0.2.11/32")], "a move is one replacement, no unwant"
    asked.clear()
    radius.handle(4.0, copied(radclient_bytes(accounting("Stop", "alice", "192.0.2.11"))))
    assert asked == [("unwant", 4242), ("unwant", 5151)]
    assert radius.summary()["discarded_non_target"] == 1 and radius.summary()["messages"] == 4


@needs_radclient
def test_a_warrant_past_its_end_derives_nothing():
    ended = IdentityTarget(4242, radius_username="alice", until=datetime.now(timezone.utc) - timedelta(seconds=1))
    radius, asked, records = handler([ended])
    radius.handle(1.0, copied(radclient_bytes(accounting("Start", "alice", "192.0.2.10"))))
    assert asked == [] and records == [] and radius.summary()["past_warrant"] == 1


def test_what_is_not_radius_is_counted_and_dropped():
    radius, asked, records = handler([IdentityTarget(4242, radius_username="alice")])
    radius.handle(1.0, bytes(IP(src=SERVER, dst=NAS) / UDP(sport=53, dport=40000) / Raw(b"\x00" * 30)))
    radius.handle(1.0, b"\x45junk")
    assert asked == [] and records == [] and radius.summary()["not_radius"] == 2
