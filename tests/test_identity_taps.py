"""The identity session -> tap state machine on events pyrad-decoded packets give."""
from mediation.identity_taps import IdentityTaps, TapChange
from mediation.radius_iri import IdentityTarget, RadiusEvent

T = IdentityTarget(cccid=15, radius_username="alice")


def ev(kind, ip, v6=None):
    return RadiusEvent(kind, "alice", None, ip, "s1", v6)


def test_start_interim_move_stop_remove():
    taps = IdentityTaps()
    assert taps.apply(T, ev("start", "192.0.2.10")) == [TapChange("provision", 15, ("192.0.2.10/32",))]
    assert taps.apply(T, ev("interim", "192.0.2.10")) == []
    assert taps.apply(T, ev("interim", "198.51.100.7")) == [
        TapChange("remove", 15, ("192.0.2.10/32",)), TapChange("provision", 15, ("198.51.100.7/32",))]
    assert taps.apply(T, ev("stop", "198.51.100.7")) == [TapChange("remove", 15, ("198.51.100.7/32",))]
    assert taps.current == {}
    assert taps.apply(T, ev("stop", None)) == []


def test_dual_stack_session_taps_both_and_a_new_ipv6_prefix_moves_it():
    taps = IdentityTaps()
    assert taps.apply(T, ev("start", "192.0.2.10", "2001:db8:1::/64")) == [
        TapChange("provision", 15, ("192.0.2.10/32", "2001:db8:1::/64"))]
    assert taps.apply(T, ev("interim", "192.0.2.10", "2001:db8:2::/64"))[-1] == \
        TapChange("provision", 15, ("192.0.2.10/32", "2001:db8:2::/64"))
