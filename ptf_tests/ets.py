"""RFC 4190 ETS conditioning: marks reset on untrusted ports and kept on
trusted ones, classification into per-class counters, over-cap ETS demoted
(not dropped) at the configured rate, the preemptive option, and intercept
copies that carry the packet as the subject sent it.

SUBJECT's port (1) is untrusted, PEER's (2) trusted; the switch runs with
3 priority queues (tests/test_ptf.py).
"""

from __future__ import annotations

import dataclasses
import math
import time

from p4protos import p4runtime_pb2 as p4r
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6

from controller import ets
from controller.entries import ETS_METER
from controller.model import Stream
from ptf_tests.base import MD_A, PEER, SUBJECT, P4tapTest, ip_filter, mediation, pcli_copy, udp4, udp6

EF_TOS = ets.EF << 2
AF31_TOS = ets.AF31 << 2


def remarked(pkt, tos: int) -> bytes:
    """`pkt` with its TOS / traffic class set to `tos`, checksum recomputed."""
    out = pkt.copy()
    if IP in out:
        out[IP].tos = tos
        del out[IP].chksum
    else:
        out[IPv6].tc = tos
    return bytes(out)


class EtsTest(P4tapTest):
    def setUp(self) -> None:
        super().setUp()
        self.ets_cfg: ets.EtsConfig | None = None

    def tearDown(self) -> None:
        try:
            if self.ets_cfg is not None and self.ets_cfg.trusted_ports:
                # An empty config puts the meters back to unconfigured (always green).
                meter_id = self.pipeline.meter_id(ETS_METER)
                self.switch.write([p4r.Update(type=p4r.Update.MODIFY, entity=p4r.Entity(meter_entry=p4r.MeterEntry(
                    meter_id=meter_id, index=p4r.Index(index=p)))) for p in self.ets_cfg.trusted_ports])
        finally:
            super().tearDown()

    def install_ets(self, **kw) -> ets.EtsConfig:
        kw.setdefault("ports", (SUBJECT.port, PEER.port))
        kw.setdefault("trusted_ports", frozenset({PEER.port}))
        self.ets_cfg = ets.EtsConfig(**kw)
        self.topology = dataclasses.replace(self.topology, ets=self.ets_cfg)
        self.switch.write([p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(table_entry=e))
                           for e in self.builder.ets_entries(self.ets_cfg)])
        self.switch.write([p4r.Update(type=p4r.Update.MODIFY, entity=e) for e in self.builder.ets_meters(self.ets_cfg)])
        # The demotion counter outlives table entries (earlier tests): count from here.
        self.demoted_before = self.class_counters()[ets.DEMOTED]
        return self.ets_cfg

    def class_counters(self) -> dict[str, int]:
        """Packets per class, read the way the controller reads them."""
        entries = [te for f in (4, 6) for te in self.switch.read_table_entries(
            self.pipeline.table_id(f"P4tapIngress.ets_conditioner.ipv{f}_marks"), with_counters=True)]
        demoted = self.switch.read_counter(self.pipeline.counter_id("P4tapIngress.ets_conditioner.ets_demoted"))
        counts = {k: v[0] for k, v in self.builder.ets_class_counters(self.ets_cfg, entries, demoted).items()}
        counts[ets.DEMOTED] -= getattr(self, "demoted_before", 0)
        return counts


class MarksResetOnUntrustedPorts(EtsTest):
    """An ETS mark from an untrusted port leaves as the default class (ECN
    kept, IPv4 checksum right); from a trusted port it is kept; other marks
    pass untouched either way."""

    def runTest(self) -> None:
        self.install_ets()
        cases = [
            # (sender, receiver, packet, TOS expected on the wire)
            (SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=EF_TOS | 1), 1),
            (SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=AF31_TOS | 2), 2),
            (SUBJECT, PEER, udp6(SUBJECT, PEER, ipv6_tc=EF_TOS | 3), 3),
            (SUBJECT, PEER, udp4(SUBJECT, PEER, ip_tos=10 << 2), 10 << 2),
            (PEER, SUBJECT, udp4(PEER, SUBJECT, ip_tos=EF_TOS), EF_TOS),
            (PEER, SUBJECT, udp6(PEER, SUBJECT, ipv6_tc=AF31_TOS | 1), AF31_TOS | 1),
        ]
        for src, dst, pkt, tos in cases:
            self.send(src.port, pkt)
            self.expect_exactly({dst.port: [remarked(pkt, tos)]})
        counts = self.class_counters()
        self.assertEqual(counts[ets.RESET], 3)
        self.assertEqual(counts[ets.MEDIA], 1)
        self.assertEqual(counts[ets.SIGNALLING], 1)
        self.assertEqual(counts[ets.DEMOTED], 0)


class Classification(EtsTest):
    """Configured code points land in their class; others in none; a code
    point added by config is classified, the defaults no longer are."""

    def runTest(self) -> None:
        self.install_ets(media_dscp=(40,), signalling_dscp=(24,))
        for tos, n in ((40 << 2, 3), (24 << 2, 2), (EF_TOS, 4), (AF31_TOS, 1)):
            for _ in range(n):
                pkt = udp4(PEER, SUBJECT, ip_tos=tos)
                self.send(PEER.port, pkt)
                self.expect_exactly({SUBJECT.port: [bytes(pkt)]})
        counts = self.class_counters()
        self.assertEqual((counts[ets.MEDIA], counts[ets.SIGNALLING], counts[ets.RESET]), (3, 2, 0))


class OverCapDemotedNotDropped(EtsTest):
    """ETS over the cap is delivered (demoted, not dropped), and the share
    kept as ETS is the burst plus the rate over the time it took."""

    RATE, BURST, SIZE, SENT = 200, 1000, 100, 40

    def runTest(self) -> None:
        self.install_ets(rate_bytes=self.RATE, burst_bytes=self.BURST)
        start = time.monotonic()
        for _ in range(self.SENT):
            pkt = udp4(PEER, SUBJECT, ip_tos=EF_TOS, pktlen=self.SIZE)
            self.send(PEER.port, pkt)
            self.expect_exactly({SUBJECT.port: [bytes(pkt)]})
        elapsed = time.monotonic() - start
        counts = self.class_counters()
        self.assertEqual(counts[ets.MEDIA], self.SENT)
        within = self.SENT - counts[ets.DEMOTED]
        # Tolerance: the bucket starts full (BURST/SIZE packets) and refills at
        # RATE for as long as the sending took; one packet either way for the
        # meter's rounding.
        low = self.BURST // self.SIZE - 1
        high = self.BURST // self.SIZE + math.ceil(elapsed * self.RATE / self.SIZE) + 1
        self.assertTrue(low <= within <= high, f"{within} within the cap, expected {low}..{high} "
                                               f"(rate {self.RATE} B/s, burst {self.BURST} B, {elapsed:.2f} s)")
        self.assertGreater(counts[ets.DEMOTED], 0)


class PreemptivePolicy(EtsTest):
    """With the preemptive policy on, ETS is not capped: nothing is demoted."""

    def runTest(self) -> None:
        self.install_ets(rate_bytes=200, burst_bytes=1000, preemptive=True)
        for _ in range(30):
            pkt = udp4(PEER, SUBJECT, ip_tos=EF_TOS, pktlen=100)
            self.send(PEER.port, pkt)
            self.expect_exactly({SUBJECT.port: [bytes(pkt)]})
        counts = self.class_counters()
        self.assertEqual((counts[ets.MEDIA], counts[ets.DEMOTED]), (30, 0))


class InterceptCopyAsSent(EtsTest):
    """A tapped subject's ETS packet on an untrusted port: the forwarded packet
    is remarked like anybody's, and the intercept copy carries the packet as
    the subject sent it (mark intact), with the mediation's DSCP outside.
    A TOS filter matches the mark as sent, not as remarked."""

    def runTest(self) -> None:
        self.install_ets()
        self.provision([mediation(501, MD_A, dscp=10)],
                       [Stream(501, 1, ip_filter(src=SUBJECT.ipv4, tos_byte=EF_TOS, tos_mask=0xFC), True)])
        for version in (4, 6):
            pkt = (udp4(SUBJECT, PEER, ip_tos=EF_TOS | 1) if version == 4 else udp6(SUBJECT, PEER, ipv6_tc=EF_TOS))
            self.send(SUBJECT.port, pkt)
            forwarded = remarked(pkt, 1 if version == 4 else 0)
            if version == 4:
                self.expect_exactly({PEER.port: [forwarded], MD_A.port: [pcli_copy(pkt, 501, MD_A, dscp=10)]})
            else:  # the filter is IPv4 only
                self.expect_exactly({PEER.port: [forwarded]})
        # Untapped traffic, remarked the same: the forwarded packet does not
        # tell whether it was tapped.
        other = udp4(SUBJECT, PEER, sport=40001, ip_tos=EF_TOS | 1)
        other[IP].src = "192.0.2.11"
        self.send(SUBJECT.port, other)
        self.expect_exactly({PEER.port: [remarked(other, 1)]})

