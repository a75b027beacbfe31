"""ETS (RFC 4190) settings driven through the real controller, its control
socket and the `p4tap ets` CLI, against a real switch with real packets on
veth pairs: what is set is what the switch holds (entries and meter rates read
back), bad settings are refused with a clear error and change nothing, and
the per-class counters count the packets that were sent.

SUBJECT's port (1) is untrusted, PEER's (2) trusted.
"""

from __future__ import annotations

import dataclasses

import pytest
from p4protos import p4runtime_pb2 as p4r

from controller import ets
from controller.entries import ETS_METER, ets_table
from controller.pipeline import decode
from controller.service import Controller, SwitchConfig
from ptf_tests.base import PEER, SUBJECT, lab_topology, udp4, udp6
from ptf_tests.ets import remarked
from tests.conftest import ETS_PRIORITY_QUEUES, needs_bmv2, needs_root
from tests.test_controller_deployment import controller_daemon, lab_config, p4tap

pytestmark = [needs_bmv2, needs_root]

EF_TOS, AF31_TOS = ets.EF << 2, ets.AF31 << 2


def ets_entries(c: Controller) -> dict[tuple[int, int, int], tuple[str, list[int]]]:
    """(family, ingress port, TOS) -> (action, params) of every ETS entry the switch holds."""
    switch = c.switches["s1"]
    pipeline, out = switch.pipeline, {}
    for family in (4, 6):
        table = ets_table(family)
        names = {pipeline.match_field(table, n).id: n for n in ("ingress_port", "tos")}
        for te in switch.conn.read_table_entries(pipeline.table_id(table)):
            key = {names[m.field_id]: decode(m.exact.value) for m in te.match}
            action = pipeline.name_of(te.action.action.action_id)
            params = [decode(p.value) for p in te.action.action.params]
            out[(family, key["ingress_port"], key["tos"])] = (action.rsplit(".", 1)[-1], params)
    return out


def meter_rates(c: Controller, ports: list[int]) -> dict[int, tuple[int, int]]:
    """(cir, cburst) the switch holds for each port's ETS meter; (0, 0) unset."""
    switch = c.switches["s1"]
    meter_id = switch.pipeline.meter_id(ETS_METER)
    out = {}
    for port in ports:
        [entity] = switch.conn.read([p4r.Entity(meter_entry=p4r.MeterEntry(meter_id=meter_id,
                                                                            index=p4r.Index(index=port)))])
        cfg = entity.meter_entry.config
        out[port] = (cfg.cir, cfg.cburst)
    return out


def send(wire, ifaces, src, dst, pkt, tos_out: int) -> None:
    """Send `pkt` from `src`; it must reach `dst` (only) with TOS `tos_out`."""
    wire.drain()
    wire.send(ifaces[src.port], bytes(pkt))
    got = wire.collect(0.3)
    assert got[ifaces[dst.port]] == [remarked(pkt, tos_out)], f"{pkt.summary()}: {got}"


def lab_controller(bmv2, tmp_path, cfg: ets.EtsConfig | None = None) -> Controller:
    topology = dataclasses.replace(lab_topology(), ets=cfg)
    return Controller([SwitchConfig("s1", bmv2.grpc_address, topology)], tmp_path / "i.db", tmp_path / "a.jsonl")


def test_set_ets_reaches_the_switch_and_counts_real_packets(ets_network, tmp_path):
    bmv2, ifaces, wire = ets_network
    with lab_controller(bmv2, tmp_path) as c:
        c.start()
        assert ets_entries(c) == {} and c.ets_counters("s1") == {}
        cfg = ets.EtsConfig(ports=(SUBJECT.port, PEER.port), trusted_ports=frozenset({PEER.port}),
                            rate_bytes=100_000, burst_bytes=20_000, priority_queues=ETS_PRIORITY_QUEUES)
        c.set_ets("s1", cfg, "test")
        held = ets_entries(c)
        # 2 ports x 2 code points x 4 ECN values x 2 families.
        assert len(held) == 32
        assert held[(4, SUBJECT.port, EF_TOS | 1)][0] == "reset_ipv4"
        assert held[(6, SUBJECT.port, AF31_TOS)][0] == "reset_ipv6"
        assert held[(4, PEER.port, EF_TOS)][0] == "ets_capped_ipv4"
        assert held[(6, PEER.port, EF_TOS)][0] == "ets_capped_ipv6"
        assert held[(4, PEER.port, EF_TOS)][1] == [cfg.media_priority]
        assert held[(6, PEER.port, AF31_TOS | 2)][1] == [cfg.signalling_priority]
        assert meter_rates(c, [PEER.port]) == {PEER.port: (100_000, 20_000)}

        # Real packets: ETS marks from the trusted port kept, from the untrusted one reset.
        for _ in range(3):
            send(wire, ifaces, PEER, SUBJECT, udp4(PEER, SUBJECT, ip_tos=EF_TOS), EF_TOS)
        for _ in range(2):
            send(wire, ifaces, PEER, SUBJECT, udp6(PEER, SUBJECT, ipv6_tc=AF31_TOS | 1), AF31_TOS | 1)
        for _ in range(4):
            send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=EF_TOS | 2), 2)
        send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=10 << 2), 10 << 2)  # not ETS: no class
        counts = {k: p for k, (p, _) in c.ets_counters("s1").items()}
        assert counts == {ets.MEDIA: 3, ets.SIGNALLING: 2, ets.RESET: 4, ets.DEMOTED: 0}

        # Trusting port 1 as well turns its resets into ETS classification.
        c.set_ets("s1", ets.EtsConfig(ports=cfg.ports, trusted_ports=frozenset(cfg.ports), rate_bytes=50_000,
                                      burst_bytes=10_000, priority_queues=ETS_PRIORITY_QUEUES), "test")
        assert ets_entries(c)[(4, SUBJECT.port, EF_TOS | 1)][0] == "ets_capped_ipv4"
        assert meter_rates(c, cfg.ports) == {SUBJECT.port: (50_000, 10_000), PEER.port: (50_000, 10_000)}
        send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=EF_TOS | 2), EF_TOS | 2)

        # None removes the conditioning: no entries, marks pass untouched.
        c.set_ets("s1", None, "test")
        assert ets_entries(c) == {}
        send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=EF_TOS), EF_TOS)
        with pytest.raises(KeyError, match="no switch named 'nope'"):
            c.set_ets("nope", cfg, "test")
    assert '"ets"' in (tmp_path / "a.jsonl").read_text()


def test_cli_sets_shows_counts_and_refuses_bad_settings(ets_network, tmp_path):
    bmv2, ifaces, wire = ets_network
    config = lab_config(tmp_path, bmv2.grpc_address, extra=(
        f"ets = {{ ports = [{SUBJECT.port}, {PEER.port}], trusted_ports = [{PEER.port}], rate_bytes = 125000, "
        f"burst_bytes = 15000, priority_queues = {ETS_PRIORITY_QUEUES} }}"))
    args = ("--socket", str(tmp_path / "control.sock"))
    with controller_daemon(config):
        shown = p4tap(*args, "ets", "show", "--switch", "s1").stdout
        assert "trusted_ports        [2]" in shown and "rate_bytes           125000" in shown, shown

        # Real packets, counted per class as the CLI shows them.
        for _ in range(3):
            send(wire, ifaces, PEER, SUBJECT, udp4(PEER, SUBJECT, ip_tos=EF_TOS), EF_TOS)
        send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=AF31_TOS), 0)
        send(wire, ifaces, PEER, SUBJECT, udp4(PEER, SUBJECT, ip_tos=AF31_TOS), AF31_TOS)
        counters = {line.split()[0]: int(line.split()[1])
                    for line in p4tap(*args, "ets", "counters", "--switch", "s1").stdout.splitlines()[1:]}
        assert counters == {ets.MEDIA: 3, ets.SIGNALLING: 1, ets.RESET: 1, ets.DEMOTED: 0}

        # A change reaches the switch: port 1 now trusted, its AF31 kept.
        out = p4tap(*args, "ets", "set", "--switch", "s1", "--trusted-ports", "1,2", "--rate", "60000").stdout
        assert "trusted_ports        [1, 2]" in out and "rate_bytes           60000" in out, out
        send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=AF31_TOS), AF31_TOS)
        good = p4tap(*args, "ets", "show", "--switch", "s1").stdout

        # Bad settings: a clear error, exit 1, nothing changed (settings, and
        # the switch: port 1's AF31 still kept, port 2's EF still ETS media).
        bad = [
            (("--media-dscp", "26"), "ETS code points repeat or overlap"),
            (("--trusted-ports", "5"), "trusted ports [5] are not ETS ports"),
            (("--ports", "1,2,600"), "port 600 is not a switch port"),
            (("--rate", "0"), "positive rate and burst"),
            (("--media-dscp", "64"), "DSCP 64 is not in 0..63"),
        ]
        for change, message in bad:
            refused = p4tap(*args, "ets", "set", "--switch", "s1", *change, check=False)
            assert refused.returncode == 1 and message in refused.stderr, (change, refused.stderr)
        refused = p4tap(*args, "ets", "set", "--switch", "nope", "--rate", "1000", check=False)
        assert refused.returncode == 1 and "nope" in refused.stderr, refused.stderr
        refused = p4tap(*args, "ets", "set", "--switch", "s1", "--ports", "1,x", check=False)
        assert refused.returncode == 2 and "not a comma-separated list of integers" in refused.stderr
        after = p4tap(*args, "ets", "show", "--switch", "s1").stdout
        assert after.split("class")[0] == good.split("class")[0], after
        send(wire, ifaces, SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=AF31_TOS), AF31_TOS)
        send(wire, ifaces, PEER, SUBJECT, udp4(PEER, SUBJECT, ip_tos=EF_TOS), EF_TOS)
        counters = {line.split()[0]: int(line.split()[1])
                    for line in p4tap(*args, "ets", "counters", "--switch", "s1").stdout.splitlines()[1:]}
        # Port 1's entries were modified in place (reset -> classify), and an
        # entry's counter survives a MODIFY: its one earlier reset packet now
        # counts under the entry's new class. So signalling = 1 (port 2) +
        # 1 (port 1, counted as reset before) + 2 (port 1, trusted).
        assert counters == {ets.MEDIA: 4, ets.SIGNALLING: 4, ets.RESET: 0, ets.DEMOTED: 0}, counters
