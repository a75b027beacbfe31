"""The identity session -> tap state machine on events pyrad-decoded packets give."""
from mediation.identity_taps import IdentityTaps, TapChange
from mediation.radius_iri import IdentityTarget, RadiusEvent

T = IdentityTarget(cccid=15, radius_username="alice")


def ev(kind, ip):
    return RadiusEvent(kind, "alice", None, ip, "s1")


def test_start_interim_move_stop_remove():
    taps = IdentityTaps()
    assert taps.apply(T, ev("start", "192.0.2.10")) == [TapChange("provision", 15, "192.0.2.10")]
    assert taps.apply(T, ev("interim", "192.0.2.10")) == []
    assert taps.apply(T, ev("interim", "198.51.100.7")) == [
        TapChange("remove", 15, "192.0.2.10"), TapChange("provision", 15, "198.51.100.7")]
    assert taps.apply(T, ev("stop", "198.51.100.7")) == [TapChange("remove", 15, "198.51.100.7")]
    assert taps.current == {}
    assert taps.apply(T, ev("stop", None)) == []
