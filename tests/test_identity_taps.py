"""A RADIUS target's sessions -> tap parts, on the events pyrad-decoded packets give: one part per session."""
from mediation.identity_taps import IdentityTaps, accept_key
from mediation.radius_iri import IdentityTarget, RadiusEvent

T = IdentityTarget(cccid=15, radius_username="alice")
NAS, NAS_B = "192.0.2.40", "192.0.2.41"


def ev(kind, ip, sid="s1", v6=None):
    return RadiusEvent(kind, "alice", None, ip, sid, v6)


def parts(change):
    return {key: s.addresses for key, s in change.set.items()}, change.drop


def test_start_interim_move_stop_remove():
    taps = IdentityTaps()
    assert parts(taps.apply(T, ev("start", "192.0.2.10"), NAS, 1.0)) == ({"radius:s1": ("192.0.2.10/32",)}, ())
    assert not taps.apply(T, ev("interim", "192.0.2.10"), NAS, 2.0), "the same address: nothing to change"
    assert parts(taps.apply(T, ev("interim", "198.51.100.7"), NAS, 3.0)) == ({"radius:s1": ("198.51.100.7/32",)}, ())
    stop = taps.apply(T, ev("stop", None), NAS, 4.0)
    assert parts(stop) == ({}, ("radius:s1",)) and stop.addresses == ("198.51.100.7/32",)
    assert taps.summary(15) == {"sessions": [], "last": "stop", "messages": 4}


def test_two_sessions_at_once_each_hold_a_part_and_end_apart():
    taps = IdentityTaps()
    taps.apply(T, ev("start", "192.0.2.10", "s1"), NAS, 1.0)
    assert parts(taps.apply(T, ev("start", None, "s2", "2001:db8:1::/64"), NAS_B, 2.0)) == (
        {"radius:s2": ("2001:db8:1::/64",)}, ()), "the second session adds its own part; the first's stays"
    assert parts(taps.apply(T, ev("interim", "192.0.2.12", "s1"), NAS, 3.0)) == (
        {"radius:s1": ("192.0.2.12/32",)}, ()), "a move touches only its session's part"
    assert [(s["session"], s["nas"], s["addresses"], s["since"], s["last"], s["messages"])
            for s in taps.summary(15)["sessions"]] == [("s1", NAS, ("192.0.2.12/32",), 1.0, "interim", 2),
                                                       ("s2", NAS_B, ("2001:db8:1::/64",), 2.0, "start", 1)]
    assert parts(taps.apply(T, ev("stop", "192.0.2.12", "s1"), NAS, 4.0)) == ({}, ("radius:s1",))
    assert [s["session"] for s in taps.summary(15)["sessions"]] == ["s2"]
    assert parts(taps.apply(T, ev("stop", None, "s2"), NAS_B, 5.0)) == ({}, ("radius:s2",))


def test_a_stop_clears_its_part_by_session_id_alone_even_unseen():
    """After an MD restart the Start is forgotten, the tap part may be kept: the Stop still names it."""
    stop = IdentityTaps().apply(T, ev("stop", "192.0.2.10", "s7"), NAS, 1.0)
    assert parts(stop) == ({}, ("radius:s7",)) and stop.addresses == ("192.0.2.10/32",)


def test_an_access_accept_without_session_id_is_keyed_by_nas_and_address_and_its_start_takes_it_over():
    taps = IdentityTaps()
    accepted = accept_key(NAS, ("192.0.2.10/32",))
    assert parts(taps.apply(T, ev("accept", "192.0.2.10", None), NAS, 1.0)) == ({accepted: ("192.0.2.10/32",)}, ())
    assert parts(taps.apply(T, ev("accept", "192.0.2.11", None), NAS, 1.5))[0] == {
        accept_key(NAS, ("192.0.2.11/32",)): ("192.0.2.11/32",)}, "another login: another part"
    assert parts(taps.apply(T, ev("start", "192.0.2.10", "s1"), NAS, 2.0)) == (
        {"radius:s1": ("192.0.2.10/32",)}, (accepted,)), "one change: the session's part in, the Accept's out"
    assert {s["session"] for s in taps.summary(15)["sessions"]} == {"s1", None}


def test_dual_stack_session_taps_both_and_a_new_ipv6_prefix_moves_it():
    taps = IdentityTaps()
    assert parts(taps.apply(T, ev("start", "192.0.2.10", v6="2001:db8:1::/64"), NAS, 1.0))[0] == {
        "radius:s1": ("192.0.2.10/32", "2001:db8:1::/64")}
    assert parts(taps.apply(T, ev("interim", "192.0.2.10", v6="2001:db8:2::/64"), NAS, 2.0))[0] == {
        "radius:s1": ("192.0.2.10/32", "2001:db8:2::/64")}


def test_forget_gives_every_part_of_the_ended_warrant():
    taps = IdentityTaps()
    taps.apply(T, ev("start", "192.0.2.10", "s1"), NAS, 1.0)
    taps.apply(T, ev("start", "192.0.2.11", "s2"), NAS, 1.0)
    assert taps.forget(15) == ("radius:s1", "radius:s2") and taps.summary(15)["sessions"] == []
