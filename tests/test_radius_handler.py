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


class RecordingKeeper:
    """The keeper's side of DerivedTaps: what it was asked, one entry per want or unwant, and what it holds."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.held: dict[int, set[tuple[str | None, str | None]]] = {}

    def want(self, spec) -> None:
        self.asked.append(("want", spec.content_id))
        self.held[spec.content_id] = {(f.src, f.dst) for f in spec.filters}

    def unwant(self, cccid: int) -> None:
        self.asked.append(("unwant", cccid))
        del self.held[cccid]

    def taken(self) -> list[tuple[str, int]]:
        asked, self.asked = self.asked, []
        return asked


def both_ways(*prefixes: str) -> set[tuple[str | None, str | None]]:
    return {pair for p in prefixes for pair in ((p, None), (None, p))}


def keeper_handler(targets):
    keeper, records = RecordingKeeper(), []
    taps = DerivedTaps(keeper.want, keeper.unwant, Endpoint("203.0.113.10", 7000))
    return RadiusHandler(targets, taps, records.append), keeper, records


@needs_radclient
def test_two_concurrent_sessions_are_both_tapped_and_each_stop_removes_only_its_own():
    """Two devices of one subscriber, each its own Acct-Session-Id: both addresses tapped (on the old code the
    second Start replaced the first's address, and the first Stop removed the second's tap)."""
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    radius.handle(1.0, copied(radclient_bytes(accounting("Start", "alice", "192.0.2.10", session="phone"))))
    radius.handle(2.0, copied(radclient_bytes(accounting("Start", "alice", None, session="laptop",
                                                         Framed_IPv6_Prefix="2001:db8:7::/64"))))
    assert keeper.held == {4242: both_ways("192.0.2.10/32", "2001:db8:7::/64")}
    assert keeper.taken() == [("want", 4242), ("want", 4242)]

    radius.handle(3.0, copied(radclient_bytes(accounting("Interim-Update", "alice", "192.0.2.11", session="phone"))))
    assert keeper.taken() == [("want", 4242)], "a move is one replacement: the keeper never sees half of it"
    assert keeper.held == {4242: both_ways("192.0.2.11/32", "2001:db8:7::/64")}, "only the phone's part moved"

    targets = radius.summary()["targets"]
    assert [(s["session"], s["nas"], s["addresses"], s["since"], s["last"], s["messages"])
            for s in targets[0]["sessions"]] == [("phone", NAS, ("192.0.2.11/32",), 1.0, "interim", 2),
                                                 ("laptop", NAS, ("2001:db8:7::/64",), 2.0, "start", 1)]

    radius.handle(4.0, copied(radclient_bytes(accounting("Stop", "alice", "192.0.2.11", session="phone"))))
    assert keeper.held == {4242: both_ways("2001:db8:7::/64")}, "the laptop's session stays tapped"
    assert keeper.taken() == [("want", 4242)]
    radius.handle(5.0, copied(radclient_bytes(accounting("Stop", "alice", None, session="laptop"))))
    assert keeper.taken() == [("unwant", 4242)] and keeper.held == {}, "the last session gone: the intercept goes"
    assert [(r.kind, r.session, r.addresses) for r in records] == [
        ("session-start", "phone", ("192.0.2.10/32",)), ("session-start", "laptop", ("2001:db8:7::/64",)),
        ("session-update", "phone", ("192.0.2.11/32",)), ("session-stop", "phone", ("192.0.2.11/32",)),
        ("session-stop", "laptop", ("2001:db8:7::/64",))]


@needs_radclient
def test_a_stop_removes_the_part_of_a_session_this_process_never_saw_start():
    """As after an MD restart with its derived taps kept: the Stop's session id alone finds the part."""
    from mediation.derived_taps import prefix_filters

    alice = IdentityTarget(4242, radius_username="alice")
    radius, keeper, _ = keeper_handler([alice])
    radius.taps.set(alice, "radius:phone", prefix_filters(("192.0.2.10/32",)), "RADIUS session phone", 0.5)
    radius.taps.set(alice, "radius:laptop", prefix_filters(("192.0.2.12/32",)), "RADIUS session laptop", 0.5)
    keeper.taken()
    radius.handle(1.0, copied(radclient_bytes(accounting("Stop", "alice", None, session="phone"))))
    assert keeper.held == {4242: both_ways("192.0.2.12/32")} and keeper.taken() == [("want", 4242)]


def test_an_access_accept_opens_a_part_by_nas_and_address_that_its_start_takes_over():
    from pyrad.packet import AcctPacket, AuthPacket

    from mediation import radius_iri

    def accept(address: str) -> bytes:
        request = AuthPacket(dict=radius_iri._dict(), secret=b"s3cret", User_Name="alice")
        request.RequestPacket()
        reply = request.CreateReply()
        reply.code = 2  # Access-Accept: no Acct-Session-Id yet
        reply["User-Name"], reply["Framed-IP-Address"] = "alice", address
        return reply.ReplyPacket()

    radius, keeper, _ = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    radius.handle(1.0, copied(accept("192.0.2.10")))
    radius.handle(1.5, copied(accept("192.0.2.11")))
    assert keeper.held == {4242: both_ways("192.0.2.10/32", "192.0.2.11/32")}, "two logins, two parts"
    keeper.taken()
    start = AcctPacket(dict=radius_iri._dict(), secret=b"s3cret")
    start["User-Name"], start["Acct-Status-Type"], start["Framed-IP-Address"] = "alice", "Start", "192.0.2.10"
    start["Acct-Session-Id"] = "s1"
    radius.handle(2.0, copied(start.RequestPacket()))
    assert keeper.taken() == [("want", 4242)] and keeper.held == {4242: both_ways("192.0.2.10/32", "192.0.2.11/32")}, \
        "the Start takes the Accept's part over in one change: the same filters, now the session's"
    assert set(radius.taps.summary()["4242"]["parts"]) == {"radius:s1",
                                                           "radius:accept from 192.0.2.40 at 192.0.2.11/32"}
    stop = AcctPacket(dict=radius_iri._dict(), secret=b"s3cret")
    stop["User-Name"], stop["Acct-Status-Type"], stop["Acct-Session-Id"] = "alice", "Stop", "s1"
    radius.handle(3.0, copied(stop.RequestPacket()))
    assert keeper.held == {4242: both_ways("192.0.2.11/32")}


@needs_radclient
def test_past_the_warrants_end_every_session_part_goes_and_nothing_is_tapped():
    import dataclasses

    alice = IdentityTarget(4242, radius_username="alice", until=datetime.now(timezone.utc) + timedelta(hours=1))
    radius, keeper, records = keeper_handler([alice])
    for n, session in enumerate(("phone", "laptop")):
        radius.handle(1.0, copied(radclient_bytes(accounting("Start", "alice", f"192.0.2.1{n}", session=session))))
    assert keeper.held == {4242: both_ways("192.0.2.10/32", "192.0.2.11/32")}
    radius.targets[0] = dataclasses.replace(alice, until=datetime.now(timezone.utc) - timedelta(seconds=1))
    keeper.taken()
    radius.handle(2.0, copied(radclient_bytes(accounting("Start", "alice", "192.0.2.12", session="tablet"))))
    assert keeper.taken() == [("unwant", 4242)] and keeper.held == {}
    assert len(records) == 2 and radius.summary()["targets"][0]["sessions"] == []


@needs_radclient
def test_sessions_restored_from_kept_taps_are_followed_as_before_the_restart():
    """An MD restarted with its derived taps kept (mediation/derived_state.py): the handler learns each
    session, and the Accept's part, from its part's key, so `md status` shows them, an Interim moves only
    its session's part and a Start on the Accept's NAS and address takes that part over."""
    from mediation.derived_taps import prefix_filters

    alice = IdentityTarget(4242, radius_username="alice")
    radius, keeper, _ = keeper_handler([alice])
    radius.taps.set(alice, "radius:phone", prefix_filters(("192.0.2.10/32",)), "RADIUS session phone", 0.5)
    radius.taps.set(alice, f"radius:accept from {NAS} at 192.0.2.12/32", prefix_filters(("192.0.2.12/32",)),
                    "RADIUS Access-Accept", 0.5)
    keeper.taken()
    radius.restore({4242: {"radius:phone": prefix_filters(("192.0.2.10/32",)),
                           f"radius:accept from {NAS} at 192.0.2.12/32": prefix_filters(("192.0.2.12/32",))}}, 0.5)
    sessions = radius.summary()["targets"][0]["sessions"]
    assert {(s["session"], s["nas"], s["addresses"], s["last"]) for s in sessions} == {
        (None, NAS, ("192.0.2.12/32",), "restored"), ("phone", "?", ("192.0.2.10/32",), "restored")}
    radius.handle(1.0, copied(radclient_bytes(accounting("Interim-Update", "alice", "192.0.2.11", session="phone"))))
    assert keeper.taken() == [("want", 4242)]
    assert keeper.held == {4242: both_ways("192.0.2.11/32", "192.0.2.12/32")}, "only the phone's part moved"
    radius.handle(2.0, copied(radclient_bytes(accounting("Start", "alice", "192.0.2.12", session="tablet"))))
    assert set(radius.taps.summary()["4242"]["parts"]) == {"radius:phone", "radius:tablet"}, \
        "the Start took the restored Accept's part over"
    assert keeper.held == {4242: both_ways("192.0.2.11/32", "192.0.2.12/32")}


@needs_radclient
def test_an_address_given_to_another_subscriber_ends_the_target_session_whose_stop_was_lost():
    """alice's Stop never reached the MD; the NAS gives her address to bob (no warrant): from bob's Start
    on, her part at that address is gone, so bob's traffic is never copied (on the old code it was, until
    the warrant ended). Her other session stays; bob's message is compared, never kept or handed over."""
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    radius.handle(1.0, copied(radclient_bytes(accounting("Start", "alice", "192.0.2.10", session="phone"))))
    radius.handle(1.5, copied(radclient_bytes(accounting("Start", "alice", None, session="laptop",
                                                         Framed_IPv6_Prefix="2001:db8:7::/64"))))
    keeper.taken()
    elsewhere = bytes(IP(src="192.0.2.41", dst=SERVER) / UDP(sport=40000, dport=1813)
                      / Raw(radclient_bytes(accounting("Start", "erin", "192.0.2.10", session="e1"))))
    radius.handle(1.8, elsewhere)  # another NAS's 192.0.2.10 (a routing domain of its own): alice's stays
    assert keeper.taken() == [] and keeper.held == {4242: both_ways("192.0.2.10/32", "2001:db8:7::/64")}
    radius.handle(2.0, copied(radclient_bytes(accounting("Start", "bob", "192.0.2.10", session="b1"))))
    assert keeper.taken() == [("want", 4242)] and keeper.held == {4242: both_ways("2001:db8:7::/64")}
    radius.handle(3.0, copied(radclient_bytes(accounting("Interim-Update", "carol", None, session="c1",
                                                         Framed_IPv6_Prefix="2001:db8:7::/64"))))
    assert keeper.taken() == [("unwant", 4242)] and keeper.held == {}
    assert [r.session for r in records] == ["phone", "laptop"], "nothing of bob's or carol's is emitted"
    summary = radius.summary()
    assert summary["ended_by_reassignment"] == 2 and summary["discarded_non_target"] == 3
    assert summary["targets"][0]["sessions"] == []
    radius.handle(4.0, copied(radclient_bytes(accounting("Start", "dave", "192.0.2.10", session="d1"))))
    assert keeper.taken() == [] and radius.summary()["ended_by_reassignment"] == 2
