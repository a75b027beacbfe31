"""p4protos: P4Runtime's messages on the protobuf in use, built from the
descriptors the installed p4runtime wheel carries, and the P4Info name index
that replaced p4runtime-shell's."""

from __future__ import annotations

import importlib
import sys

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.internal import api_implementation

import p4protos
from controller.pipeline import Pipeline, PipelineError, name_index
from p4protos import p4info_pb2, p4runtime_pb2, p4runtime_pb2_grpc


@pytest.mark.parametrize("name", p4protos._MODULES)
def test_each_module_is_the_wheels_file_under_its_usual_name(name):
    module = sys.modules[name]
    assert module is getattr(p4protos, name.rpartition(".")[2])
    assert module is getattr(importlib.import_module(name.rpartition(".")[0]), name.rpartition(".")[2])
    carried = descriptor_pb2.FileDescriptorProto.FromString(p4protos._serialized_file(name))
    loaded = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(loaded)
    assert loaded == carried  # every message, field and enum of the wheel's .proto, nothing else


def test_messages_round_trip_and_the_stubs_use_them():
    entity = p4runtime_pb2.Entity()
    match = entity.table_entry.match.add(field_id=3)
    match.lpm.value, match.lpm.prefix_len = b"\xc0\x00\x02", 24
    entity.table_entry.action.action.params.add(param_id=1, value=b"\x07")
    request = p4runtime_pb2.WriteRequest(device_id=1, updates=[p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT,
                                                                                     entity=entity)])
    assert p4runtime_pb2.WriteRequest.FromString(request.SerializeToString()) == request
    assert p4runtime_pb2_grpc.p4_dot_v1_dot_p4runtime__pb2 is p4runtime_pb2


def test_the_protobuf_is_c_backed():
    """The point of the move (README, Toolchain): not protobuf's pure-Python mode."""
    assert api_implementation.Type() == "upb"


def test_pipeline_names_answer_by_full_name_alias_and_unique_suffix():
    pipeline = Pipeline.load()
    table = pipeline.p4info.tables[0].preamble
    assert pipeline.table_id(table.name) == pipeline.table_id(table.alias) == table.id
    assert pipeline.table_id(table.name.split(".", 1)[1]) == table.id
    assert pipeline.name_of(table.id) == table.name
    with pytest.raises(PipelineError, match="no table named 'no_such_table'"):
        pipeline.table_id("no_such_table")
    with pytest.raises(PipelineError, match="no object with id"):
        pipeline.name_of(0x7FFFFFFF)


def test_a_suffix_two_objects_share_names_neither():
    info = p4info_pb2.P4Info()
    for i, name in enumerate(("In.a.gate", "In.b.gate", "In.c.other")):
        info.tables.add().preamble.CopyFrom(p4info_pb2.Preamble(id=i + 1, name=name, alias=name.rsplit(".", 1)[1]))
    index = name_index(info.tables)
    assert "gate" not in index  # two aliases and two suffixes: neither table
    assert index["a.gate"].preamble.id == 1 and index["b.gate"].preamble.id == 2
    assert index["other"].preamble.id == index["c.other"].preamble.id == index["In.c.other"].preamble.id == 3
