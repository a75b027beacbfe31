"""The counters count: filter entries count intercepted packets, the
encapsulation table counts copies per mediation, and a copy whose
mediation has no encapsulation is dropped and counted as lost."""

from __future__ import annotations

from controller.entries import ENCAP_DROPS_COUNTER, ENCAP_TABLE, deletes, filter_table
from controller.model import Stream
from controller.plan import Side
from ptf_tests.base import MD_A, MD_B, PEER, SUBJECT, P4tapTest, ip_filter, mediation, pcli_copy, tcp4


class CountersCount(P4tapTest):
    def counts(self, table: str) -> list[int]:
        entries = self.switch.read_table_entries(self.pipeline.table_id(table), with_counters=True)
        return sorted(e.counter_data.packet_count for e in entries)

    def runTest(self) -> None:
        plan = self.provision([mediation(401, MD_A), mediation(402, MD_B)],
                              [Stream(401, 1, ip_filter(src=SUBJECT.ipv4), True),
                               Stream(402, 1, ip_filter(src=SUBJECT.ipv4, protocol=6), True)])
        sent = 5
        for _ in range(sent):
            pkt = tcp4(SUBJECT, PEER)
            self.send(SUBJECT.port, pkt)
            self.expect_exactly({PEER.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, 401, MD_A)],
                                 MD_B.port: [pcli_copy(pkt, 402, MD_B)]})
        # One region (both filters) took every packet; the other (A alone) none.
        self.assertEqual(self.counts(filter_table(4, Side.SRC)), [0, sent])
        self.assertEqual(self.counts(ENCAP_TABLE), [sent, sent])

        # Remove B's encapsulation only: B's copies are now lost, and counted.
        encap_b = next(e for e in plan.encaps if e.content_id == 402)
        self.switch.write(deletes([self.builder.encode(encap_b).entity]))
        self.installed = [e for e in self.installed if e != self.builder.encode(encap_b).entity]
        pkt = tcp4(SUBJECT, PEER)
        self.send(SUBJECT.port, pkt)
        self.expect_exactly({PEER.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, 401, MD_A)]})
        drops = self.switch.read_counter(self.pipeline.counter_id(ENCAP_DROPS_COUNTER), index=encap_b.rid)
        self.assertEqual([d.data.packet_count for d in drops], [1])
