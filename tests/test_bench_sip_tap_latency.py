"""bench.sip_tap_latency kept runnable: its calls' messages are what the MD
must see, and two calls through the whole path (switch, IAP's SNMPv3 agent,
MD daemon) each get their media copied and their tap removed after the BYE.
The figures themselves belong in BENCHMARKS.md, not here."""

from __future__ import annotations

from bench.sip_calls import call_messages
from bench.sip_tap_latency import measure
from bmv2_topo.demo import Progress
from mediation.sip_parse import Identity, MediaEndpoint, parse
from tests.conftest import needs_root
from tests.test_e2e_demo import needs_pipeline


def test_each_call_has_its_own_caller_call_id_and_media_with_right_lengths():
    calls = [call_messages(n, caller=f"user-{n}", caller_at="192.0.2.10", callee_at="192.0.2.21",
                           media_port=20000 + 2 * n, callee_media="192.0.2.20") for n in (1, 2)]
    for n, messages in zip((1, 2), calls):
        parsed = [parse(m) for m in messages]
        assert [(p.method, p.status) for p in parsed] == [("INVITE", None), (None, 180), (None, 200),
                                                          ("ACK", None), ("BYE", None), (None, 200)]
        assert {p.call_id for p in parsed} == {f"{n}-bench@192.0.2.10"}
        assert Identity(f"user-{n}", "example.test") in parsed[0].identities
        assert parsed[0].media == (MediaEndpoint("192.0.2.10", 20000 + 2 * n, 20001 + 2 * n),)
        assert parsed[2].media == (MediaEndpoint("192.0.2.20", 20000 + 2 * n, 20001 + 2 * n),)
        for raw in messages:
            head, _, body = raw.partition(b"\r\n\r\n")
            assert f"Content-Length: {len(body)}".encode() in head


@needs_root
@needs_pipeline
def test_two_calls_through_the_md_path_are_copied_and_their_taps_go_at_bye(tmp_path, target):
    """On each switch target (the `target` fixture skips one that cannot run here)."""
    figures = measure(2, 2.0, 0.0, target, tmp_path / "run", Progress())
    assert figures.missed == [] and figures.left == []
    assert len(figures.first_ms) == len(figures.baseline_ms) == 2
    # the copy comes after the 200 OK that made it (the two kernel stamps on one clock, the right way round)
    assert all(ms > 0 for ms in figures.first_ms + figures.baseline_ms)
