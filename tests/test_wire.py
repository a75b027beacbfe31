"""controller.wire against the protobuf library: every entity the controller
builds must serialize byte for byte as protobuf's deterministic serializer
does for the canonical form of the same entity, with the same identity, or
reconcile would see differences that are not there (or miss real ones)."""

from __future__ import annotations

import random

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from p4protos import p4runtime_pb2 as p4r

from controller import wire
from controller.entries import EntryBuilder
from controller.model import Stream
from controller.pipeline import Pipeline
from controller.plan import IdAllocator, plan_intercepts
from controller.reconcile import canonical, key_of
from ptf_tests.base import lab_topology
from tests.test_plan import NOW, mediation, random_filter, topology, v4


@pytest.fixture(scope="module")
def builder() -> EntryBuilder:
    return EntryBuilder(Pipeline.load())


@pytest.mark.parametrize("seed", range(5))
def test_every_entity_is_its_canonical_protobuf_serialization(builder, seed):
    rng = random.Random(seed)
    meds = [mediation(c) for c in range(1, 6)]
    streams = [Stream(m.content_id, i, random_filter(rng), True) for m in meds for i in range(1, 4)]
    # Both sides for mediation 1, one side overlapping mediation 2's: merge entries too.
    streams += [Stream(1, 10, v4(src="192.0.2.7/32"), True), Stream(1, 11, v4(dst="198.51.100.7/32"), True),
                Stream(2, 10, v4(src="192.0.2.0/24"), True)]
    plan = plan_intercepts(meds, streams, topology(), IdAllocator(), NOW)
    entities = builder.intercept_wire(plan) + builder.forwarding_wire(topology()) + builder.forwarding_wire(lab_topology())
    kinds = {e.key[0] for e in entities}
    assert kinds == {"table", "clone", "mcast"} and plan.merges and plan.gates, "every kind is covered"
    for entity in entities:
        parsed = p4r.Entity.FromString(entity.data)
        assert canonical(parsed).SerializeToString(deterministic=True) == entity.data
        assert key_of(canonical(parsed)) == entity.key
        assert wire.from_entity(parsed) == entity


def test_values_and_varints_match_the_library():
    for number, bits in [(0, 1), (1, 9), (255, 8), (256, 16), (2**32 - 1, 32), (2**127 + 5, 128), (0x1FF, 9)]:
        padded = number.to_bytes((bits + 7) // 8, "big")  # as a target may answer
        assert wire.value(number, bits) == (padded.lstrip(b"\0") or b"\0") == wire._canon(padded)
    for number in [0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**63 - 1]:
        assert wire.varint(number) == _VarintBytes(number)
    with pytest.raises(ValueError, match="does not fit in 9 bits"):
        wire.value(512, 9)


def test_a_write_request_parses_as_the_protobuf_one(builder):
    entities = builder.forwarding_wire(lab_topology())
    kinds = [p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE]
    header = p4r.WriteRequest(device_id=3, election_id=p4r.Uint128(high=1, low=2),
                              atomicity=p4r.WriteRequest.ROLLBACK_ON_ERROR)
    data = wire.write_request(header, [wire.update(kinds[i % 3], e) for i, e in enumerate(entities)])
    expected = p4r.WriteRequest()
    expected.CopyFrom(header)
    for i, e in enumerate(entities):
        expected.updates.add(type=kinds[i % 3], entity=e.entity)
    assert p4r.WriteRequest.FromString(data) == expected
