"""Differential test: bmv2 and the softswitch, same pipeline, same state,
same random packets; every output frame (byte for byte, per port) and every
counter must be the same.

* p4tap itself, with random intercept sets (random mediations and filters,
  planned and encoded by the controller; in some rounds another random set
  is installed and removed first) and random traffic: bridged, routed,
  flooded, VLAN-tagged, IPv4 with options, fragments, bad checksums, odd TTLs,
  IPv6 with flow labels, TCP/UDP/ICMP/other, short and oddly-sized frames;
* the softswitch fixtures (tests/fixtures/softswitch/*.p4): parser features,
  expressions/tables/externs, the v1model architecture (I2E/E2E clones,
  resubmit, recirculate, multicast, truncate, priority, drop, packet-in/out),
  and QoS (direct and indirect meters choosing the priority queue of 8, with
  priorities beyond the queues dropped).

Needs root (veth pairs ``p4ts*``), simple_switch_grpc, and the compiled
pipelines.  The seed is printed; ``P4TAP_DIFF_SEED`` replays a run and
``P4TAP_DIFF_PACKETS`` sets the number of packets per scenario.
"""

from __future__ import annotations

import ipaddress
import os
import random
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import text_format
from p4protos import p4info_pb2
from p4protos import p4runtime_pb2 as p4r
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from bmv2_topo.bmv2_switch import target_skip_reason
from tests.conftest import needs_root

FIXTURES = Path(__file__).parent / "fixtures" / "softswitch"
SEED = int(os.environ.get("P4TAP_DIFF_SEED", random.SystemRandom().randrange(1 << 30)))
NPACKETS = int(os.environ.get("P4TAP_DIFF_PACKETS", "300"))

pytestmark = [needs_root, pytest.mark.skipif(target_skip_reason("bmv2") is not None,
                                             reason=f"differential test needs bmv2: {target_skip_reason('bmv2')}")]


def _compare(results: dict, what: str) -> None:
    a, b = results["bmv2"], results["softswitch"]
    assert a.write_errors == b.write_errors, f"{what}: write errors differ"
    for port in sorted(set(a.outputs) | set(b.outputs)):
        fa = sorted(a.outputs.get(port, []))
        fb = sorted(b.outputs.get(port, []))
        if fa != fb:
            only_a = [f.hex() for f in fa if f not in fb][:3]
            only_b = [f.hex() for f in fb if f not in fa][:3]
            pytest.fail(f"{what} (seed {SEED}): port {port}: bmv2 sent {len(fa)} frames, softswitch {len(fb)}\n"
                        f"only bmv2: {only_a}\nonly softswitch: {only_b}")
    from tests.softswitch_support import normalize_reads
    assert normalize_reads(a.entities) == normalize_reads(b.entities), f"{what} (seed {SEED}): reads/counters differ"


def _run_both(ports, p4info, cfg, updates, frames, reads, tmp_path, **kw):
    from tests.softswitch_support import hosts_on, run_scenario
    results = {}
    with hosts_on(ports) as (pairs, cap):
        for target in ("bmv2", "softswitch"):
            results[target] = run_scenario(target, pairs, cap, p4info, cfg, updates, frames, reads, tmp_path, **kw)
    return results


# ----------------------------------------------------------------------------- p4tap


def _random_filter(rng: random.Random, hosts) -> object:
    from controller.model import InetAddressType, IpFilter
    v6 = rng.random() < 0.35
    def addr(h):
        return ipaddress.ip_address(h.ipv6 if v6 else h.ipv4)
    bits = 128 if v6 else 32
    kw = {}
    pick = rng.random()
    if pick < 0.45:
        kw.update(src_address=addr(rng.choice(hosts)), src_length=rng.choice([bits, bits, bits - 8, 24 if not v6 else 64]))
    elif pick < 0.85:
        kw.update(dst_address=addr(rng.choice(hosts)), dst_length=rng.choice([bits, bits, bits - 4]))
    else:
        kw.update(src_address=addr(rng.choice(hosts)), src_length=bits, dst_address=addr(rng.choice(hosts)),
                  dst_length=rng.choice([bits, 16 if not v6 else 48]))
    if rng.random() < 0.3:
        kw["protocol"] = rng.choice([6, 17, 1, 0])
    if rng.random() < 0.25:
        lo = rng.choice([0, 80, 5060, 1024])
        kw.update(dst_port_min=lo, dst_port_max=lo + rng.choice([0, 0, 10, 1000]))
    if rng.random() < 0.15:
        lo = rng.choice([40000, 1024])
        kw.update(src_port_min=lo, src_port_max=lo + rng.choice([0, 100, 30000]))
    if rng.random() < 0.15:
        mask = rng.choice([0xFC, 0xE0, 0xFF])
        kw.update(tos_byte=rng.randrange(256) & mask, tos_mask=mask)
    if v6 and rng.random() < 0.1:
        kw["flow_id"] = rng.choice([0, 1, 0xABCDE])
    if rng.random() < 0.1:
        kw["interface"] = rng.choice([1, 2, 3])
    if rng.random() < 0.1:
        kw["vrf"] = "blue"
    return IpFilter(InetAddressType.IPV6 if v6 else InetAddressType.IPV4, **kw)


def _random_plan(rng: random.Random, topo):
    """A random tap set: 1-5 mediations (MD A or B, v4 or v6, random DSCP and
    port), each with 1-3 streams of random filters, planned by the controller."""
    from controller.model import InterceptError, Mediation, Stream
    from controller.plan import IdAllocator, plan_intercepts
    from ptf_tests.base import HOSTS, MD_A, MD_B

    timeout = datetime.now(UTC) + timedelta(hours=1)
    mediations, streams = [], []
    for cid in range(1, rng.randint(1, 5) + 1):
        md = rng.choice([MD_A, MD_B])
        v6 = rng.random() < 0.3
        mediations.append(Mediation(cid, ipaddress.ip_address(md.ipv6 if v6 else md.ipv4),
                                    rng.choice([7000, 9000, 5555]), dscp=rng.choice([34, 46, 0, 63]), timeout=timeout))
        for idx in range(1, rng.randint(1, 3) + 1):
            try:
                streams.append(Stream(cid, idx, _random_filter(rng, HOSTS), True))
            except InterceptError:
                pass
    return plan_intercepts(mediations, streams, topo, IdAllocator(), datetime.now(UTC))


def p4tap_state(rng: random.Random, churn: bool = False):
    """Forwarding state and a random tap set.  With ``churn`` another random
    tap set is installed first and removed again, so the switch holds the
    second set on reused entry handles, clone session ids and groups."""
    from controller.entries import EntryBuilder, deletes, inserts
    from controller.pipeline import Pipeline
    from ptf_tests.base import lab_topology

    pipeline = Pipeline.load()
    builder = EntryBuilder(pipeline)
    topo = lab_topology()
    updates = inserts(builder.forwarding_entities(topo))
    if churn:
        first = builder.intercept_entities(_random_plan(rng, topo))
        updates += inserts(first) + deletes(first)
    updates += inserts(builder.intercept_entities(_random_plan(rng, topo)))
    return pipeline, updates


def random_p4tap_frame(rng: random.Random) -> tuple[int, bytes]:
    from ptf_tests.base import HOSTS, ROUTER_MAC
    src = rng.choice(HOSTS)
    dst = rng.choice(HOSTS)
    eth_dst = rng.choices([dst.mac, ROUTER_MAC, "ff:ff:ff:ff:ff:ff", "02:00:00:00:00:99"], [5, 4, 1, 1])[0]
    kind = rng.choices(["v4", "v6", "arp", "raw"], [6, 3, 1, 1])[0]
    rnd_v4 = lambda: rng.choice([h.ipv4 for h in HOSTS] + ["192.0.2.77", "198.51.100.200", "203.0.113.99"])
    rnd_v6 = lambda: rng.choice([h.ipv6 for h in HOSTS] + ["2001:db8:1::77", "2001:db8:9::1"])
    payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 6, 18, 40, 200, 600])))
    l4 = rng.choice(["tcp", "udp", "icmp", "other"])
    if l4 == "tcp":
        seg = TCP(sport=rng.choice([40000, 80, 5060, rng.randrange(65536)]),
                  dport=rng.choice([80, 443, 5060, 5061, rng.randrange(65536)]))
    elif l4 == "udp":
        seg = UDP(sport=rng.choice([40000, 5060, rng.randrange(65536)]),
                  dport=rng.choice([5060, 7000, 53, rng.randrange(65536)]))
    elif l4 == "icmp":
        seg = ICMP()
    else:
        seg = None
    if kind == "v4":
        ip = IP(src=rnd_v4(), dst=rnd_v4(), ttl=rng.choice([0, 1, 2, 64, 255]), tos=rng.randrange(256),
                id=rng.randrange(65536))
        if rng.random() < 0.1:
            ip.frag = rng.randrange(1, 200)
        if rng.random() < 0.15:
            ip.options = [IPOption(b"\x01" * (4 * rng.randint(1, 10) - 0))]
        if seg is None:
            ip.proto = rng.choice([0, 47, 89, 255])
        pkt = ip / seg / payload if seg is not None else ip / payload
        raw = bytes(pkt)
        if rng.random() < 0.1:  # bad header checksum
            raw = raw[:10] + bytes([raw[10] ^ 0x5A, raw[11]]) + raw[12:]
        if rng.random() < 0.05:  # total length larger/smaller than what is there
            raw = raw[:2] + (len(raw) + rng.choice([-6, 20])).to_bytes(2, "big") + raw[4:]
        l3, etype = raw, 0x0800
    elif kind == "v6":
        ip6 = IPv6(src=rnd_v6(), dst=rnd_v6(), hlim=rng.choice([0, 1, 2, 64]), tc=rng.randrange(256),
                   fl=rng.choice([0, 1, 0xABCDE, rng.randrange(1 << 20)]))
        if seg is None:
            ip6.nh = rng.choice([59, 0, 50])
        l3 = bytes(ip6 / seg / payload if seg is not None else ip6 / payload)
        etype = 0x86DD
    elif kind == "arp":
        l3, etype = bytes(ARP(psrc=src.ipv4, pdst=dst.ipv4)), 0x0806
    else:
        l3, etype = payload, rng.choice([0x88B5, 0x9000, 0x0800, 0x86DD])
    frame = bytes(Ether(src=src.mac, dst=eth_dst, type=etype)) + l3
    if rng.random() < 0.2:
        frame = frame[:12] + bytes(Dot1Q(vlan=rng.choice([0, 5, 9, 100]), type=etype))[:4] + frame[12:]
    if rng.random() < 0.05:
        frame = frame[:rng.randrange(14, max(15, len(frame)))]
    if len(frame) < 60 and rng.random() < 0.5:
        frame += bytes(60 - len(frame))  # Ethernet padding after the IP packet
    return src.port, frame


def p4tap_reads(pipeline) -> list[p4r.Entity]:
    reads = _stateful_reads(pipeline.p4info)
    reads.append(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
        clone_session_entry=p4r.CloneSessionEntry())))
    reads.append(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
        multicast_group_entry=p4r.MulticastGroupEntry())))
    return reads


@pytest.mark.parametrize("round_", range(3))
def test_p4tap_random_taps_and_traffic(tmp_path, round_):
    from controller.pipeline import P4TAP
    if not P4TAP.exists():
        pytest.skip("compiled pipeline missing: make p4")
    from ptf_tests.base import PORTS
    rng = random.Random(SEED * 10 + round_)
    pipeline, updates = p4tap_state(rng, churn=round_ > 0)
    frames = [random_p4tap_frame(rng) for _ in range(NPACKETS)]
    print(f"seed {SEED} round {round_}: {len(updates)} updates, {len(frames)} frames")
    results = _run_both(PORTS, pipeline.p4info, pipeline.device_config, updates, frames, p4tap_reads(pipeline),
                        tmp_path)
    total = sum(len(v) for v in results["bmv2"].outputs.values())
    copies = sum(1 for v in results["bmv2"].outputs.values() for f in v if len(f) > 42 and
                 ((f[12:14] == b"\x08\x00" and f[23] == 17 and f[15] >> 2 in (34, 46, 0, 63) and f[36:38] in
                   (b"\x1b\x58", b"\x23\x28", b"\x15\xb3")) or (f[12:14] == b"\x86\xdd" and f[20] == 17)))
    print(f"bmv2 emitted {total} frames ({copies} look like intercept copies) per port "
          f"{ {p: len(v) for p, v in sorted(results['bmv2'].outputs.items())} }")
    assert total > 0
    _compare(results, f"p4tap round {round_}")


# ----------------------------------------------------------------------------- fixtures


def _stateful_reads(p4info) -> list[p4r.Entity]:
    """Every table entry with its direct counter and meter, every indirect
    counter and meter cell."""
    reads = [p4r.Entity(table_entry=p4r.TableEntry(counter_data=p4r.CounterData(), meter_config=p4r.MeterConfig()))]
    reads += [p4r.Entity(counter_entry=p4r.CounterEntry(counter_id=c.preamble.id)) for c in p4info.counters]
    reads += [p4r.Entity(meter_entry=p4r.MeterEntry(meter_id=m.preamble.id)) for m in p4info.meters]
    return reads


def _fixture(name: str):
    p4info = text_format.Parse((FIXTURES / f"{name}.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    return p4info, (FIXTURES / f"{name}.json").read_bytes()


def _rand_eth(rng, etype: int, body: bytes, dst: bytes | None = None) -> bytes:
    dst = dst if dst is not None else bytes([2, 0, 0, 0, 0, rng.randrange(4)])
    return dst + bytes([2, 0, 0, 0, 0, 0x10 + rng.randrange(4)]) + etype.to_bytes(2, "big") + body


def parse_frames(rng: random.Random, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        k = rng.random()
        inner = bytes(IP(src="192.0.2.1", dst="198.51.100.2", ttl=rng.choice([0, 1, 64]),
                         options=[IPOption(b"\x01" * (4 * rng.randint(0, 9)))] if rng.random() < 0.3 else [],
                         frag=rng.choice([0, 0, 0, 5]), proto=rng.choice([6, 17, 17, 99])) /
                      (b"\x00\x35\x00\x35\x00\x10\x00\x00" + bytes(rng.randrange(256) for _ in range(rng.randrange(40)))))
        if rng.random() < 0.15:
            inner = bytes([rng.choice([0x45, 0x44, 0x65, 0x4f])]) + inner[1:]
        if rng.random() < 0.1:
            inner = inner[:10] + b"\xde\xad" + inner[12:]
        if k < 0.45:
            body, etype = inner, 0x0800
        elif k < 0.8:
            tags = rng.randint(1, 3)
            body = b""
            for t in range(tags):
                nxt = 0x8100 if t < tags - 1 else rng.choice([0x0800, 0x0800, 0x86DD])
                body += ((rng.choice([7, 7, 3, 100]) | (rng.randrange(8) << 13)).to_bytes(2, "big") +
                         nxt.to_bytes(2, "big"))
            body += inner
            etype = rng.choice([0x8100, 0x9100])
        else:
            body = bytes([rng.choice([0x00, 0x10, 0x20, 0x0f]), rng.randrange(256)]) + bytes(rng.randrange(30))
            etype = 0x88B5
        frame = _rand_eth(rng, etype, body)
        if rng.random() < 0.1:
            frame = frame[:rng.randrange(14, len(frame) + 1)]
        out.append((rng.randrange(1, 5), frame))
    return out


def actions_state(rng: random.Random, p4info) -> list[p4r.Update]:
    from tests.test_softswitch_p4runtime import Ids, te, upd
    ids = Ids(p4info)
    ups = []
    for dst in range(4):
        for sel in range(3):
            if rng.random() < 0.7:
                act = rng.choice(["set_tbl", "set_tbl_port", "stop"])
                params = {"set_tbl": [bytes([rng.randrange(256)])],
                          "set_tbl_port": [bytes([rng.randrange(256)]), bytes([rng.randrange(1, 5)])],
                          "stop": []}[act]
                ups.append(upd(p4r.Update.INSERT, table_entry=te(
                    ids, "t_exact", [("dst", "exact", bytes([2, 0, 0, 0, 0, dst])), ("sel", "exact", bytes([sel]))],
                    act, params)))
    for plen in (8, 16, 24, 32):
        for _ in range(2):
            v = rng.randrange(1 << 32) & (((1 << plen) - 1) << (32 - plen))
            ups.append(upd(p4r.Update.INSERT, table_entry=te(ids, "t_lpm", [("d", "lpm", v.to_bytes(4, "big"), plen)],
                                                            "set_lpm", [bytes([plen])])))
    for i in range(12):
        mask = rng.choice([0xF0, 0xFF, 0x0F, 0x80])
        lo = rng.randrange(0, 60000)
        ups.append(upd(p4r.Update.INSERT, table_entry=te(
            ids, "t_tern", [("a", "ternary", bytes([rng.randrange(256) & mask]), bytes([mask])),
                            ("c", "range", lo.to_bytes(2, "big"), (lo + rng.randrange(3000)).to_bytes(2, "big")),
                            ("b", "exact", bytes([rng.randrange(4)]))],
            "set_rng", [bytes([i])], priority=rng.randint(1, 5))))
    for i in range(6):
        m = []
        if rng.random() < 0.7:
            m.append(("b", "optional", bytes([rng.randrange(4)])))
        if rng.random() < 0.7:
            m.append(("a", "optional", bytes([rng.randrange(256)])))
        ups.append(upd(p4r.Update.INSERT, table_entry=te(ids, "t_opt", m, "set_opt", [bytes([i])], priority=i + 1)))
    # meters that never refill: colours depend only on packet counts
    from tests.test_softswitch_p4runtime import _meter
    for i in range(4):
        ups.append(upd(p4r.Update.MODIFY, meter_entry=_meter(ids, i, cir=0, cburst=3 + i, pir=0, pburst=6 + i)))
    return ups


def actions_frames(rng: random.Random, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        args = (bytes([rng.randrange(256), rng.randrange(256)]) + rng.randrange(65536).to_bytes(2, "big") +
                rng.randrange(1 << 32).to_bytes(4, "big") + bytes([rng.randrange(256), rng.randrange(4),
                                                                   rng.randrange(256), rng.randrange(256)]))
        if rng.random() < 0.1:
            frame = _rand_eth(rng, 0x0800, bytes(20))
        else:
            frame = _rand_eth(rng, 0x88B6, args + bytes(rng.randrange(20)))
        # registers and meters depend on the order packets arrive in: one ingress port keeps it
        out.append((1, frame))
    return out


def arch_state(p4info) -> list[p4r.Update]:
    from tests.test_softswitch_p4runtime import _clone, _group, upd
    ups = []
    for sid, reps in ((1, [(3, 1)]), (2, [(3, 5), (4, 6)]), (3, [(2, 0), (3, 0), (4, 7)])):
        ups.append(upd(p4r.Update.INSERT, packet_replication_engine_entry=_clone(sid, reps)))
    for gid, reps in ((1, [(1, 1), (2, 2), (3, 3)]), (2, [(4, 1), (4, 2)]), (3, [])):
        ups.append(upd(p4r.Update.INSERT, packet_replication_engine_entry=_group(gid, reps)))
    return ups


def arch_frames(rng: random.Random, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        op = rng.choice([0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 7, 8, 8, 9])
        cmd = bytes([op, rng.randrange(256)]) + rng.choice([1, 2, 3, 9]).to_bytes(2, "big") + \
            rng.choice([0, 1, 2, 3, 5]).to_bytes(2, "big") + bytes([rng.choice([0, 0, 1, 7])]) + \
            bytes([rng.choice([0, 0, 0, 20, 40])])
        if rng.random() < 0.1:
            frame = _rand_eth(rng, 0x0806, bytes(28))   # goes to the CPU port: dropped (no controller)
        else:
            frame = _rand_eth(rng, 0x88B7, cmd + bytes(rng.randrange(30)))
        out.append((rng.randrange(1, 5), frame))
    return out


def qos_state(rng: random.Random, p4info) -> list[p4r.Update]:
    """Classes with direct meters, indirect meter cells; rates 0 (the buckets
    never refill), so the colours depend only on the packets, not on time."""
    from tests.test_softswitch_p4runtime import Ids, te, upd
    ids = Ids(p4info)
    ups = []
    for cls in range(6):
        if rng.random() < 0.8:
            e = te(ids, "cls", [("cls", "exact", bytes([cls]))], "classify",
                   [bytes([rng.randrange(8)]), bytes([rng.randrange(8)])])
            if rng.random() < 0.8:
                e.meter_config.cburst, e.meter_config.pburst = rng.randrange(0, 3000), rng.randrange(3000, 9000)
            ups.append(upd(p4r.Update.INSERT, table_entry=e))
    for i in range(16):
        if rng.random() < 0.7:
            m = p4r.MeterEntry(meter_id=ids.meter("idx_meter"))
            m.index.index = i
            m.config.cburst, m.config.pburst = rng.randrange(0, 10), rng.randrange(10, 30)
            ups.append(upd(p4r.Update.MODIFY, meter_entry=m))
    return ups


def qos_frames(rng: random.Random, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        # op 0/1 only: the queue depths (op bit 1) depend on thread timing on bmv2
        q = bytes([rng.choice([0, 1, 1]), rng.randrange(8), rng.choice([rng.randrange(16), rng.randrange(256)]),
                   rng.randrange(8), rng.randrange(1, 5)])
        if rng.random() < 0.1:
            frame = _rand_eth(rng, 0x0800, bytes(20))
        else:
            frame = _rand_eth(rng, 0x88B8, q + bytes(rng.randrange(60)))
        out.append((1, frame))   # meters depend on arrival order: one ingress port keeps it
    return out


@pytest.mark.parametrize("name", ["ss_parse", "ss_actions", "ss_arch", "ss_qos"])
def test_fixture_programs(tmp_path, name):
    if not (FIXTURES / f"{name}.json").exists():
        pytest.skip("compiled fixtures missing")
    rng = random.Random(SEED + zlib.crc32(name.encode()))
    p4info, cfg = _fixture(name)
    reads: list[p4r.Entity] = []
    if name == "ss_parse":
        updates, frames = [], parse_frames(rng, NPACKETS)
    elif name == "ss_actions":
        updates, frames = actions_state(rng, p4info), actions_frames(rng, NPACKETS)
        reads = _stateful_reads(p4info)
    elif name == "ss_qos":
        updates, frames = qos_state(rng, p4info), qos_frames(rng, NPACKETS)
        reads = _stateful_reads(p4info)
    else:
        updates, frames = arch_state(p4info), arch_frames(rng, NPACKETS)
    results = _run_both([1, 2, 3, 4], p4info, cfg, updates, frames, reads, tmp_path,
                        priority_queues=8 if name == "ss_qos" else None)
    out = [f for fs in results["bmv2"].outputs.values() for f in fs]
    assert out, f"{name}: bmv2 sent nothing; the comparison would prove nothing"
    if name == "ss_qos":   # the meters really coloured: more than one colour came out
        assert len({f[19] for f in out if f[12:14] == b"\x88\xb8"}) > 1
    _compare(results, name)
