"""The Tofino device configs (controller.tofino_config) decode back to the compiler's files.

The decoders here are written from the layouts' documentation, not from the
encoder: PI's packing as p4runtime-shell's config_builders/tofino.py writes
it (three times a 4-byte little-endian length, then the bytes: program name,
tofino.bin, context.json), and Stratum's BfPipelineConfig parsed by
protobuf itself from a descriptor transcribed from stratum's bf.proto.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from controller.pipeline import P4TAP, Pipeline, PipelineError
from controller.tofino_config import PROGRAM_NAME, TofinoArtifacts, artifacts_for

TOFINO_TARGETS = {"tofino": ("tna", "tofino.bin"), "tofino2": ("t2na", "tofino2.bin")}


def need(target: str, fmt: str) -> TofinoArtifacts:
    which = artifacts_for(target, fmt)
    assert isinstance(which, TofinoArtifacts)
    if not which.exists():
        pytest.skip(f"{which.build} not committed (make p4 with p4c-barefoot)")
    return which


def read_pi(blob: bytes) -> list[bytes]:
    """PI's layout: <u32 LE length><bytes>, three times, nothing after."""
    parts, at = [], 0
    for _ in range(3):
        (size,) = struct.unpack_from("<I", blob, at)
        at += 4
        parts.append(blob[at:at + size])
        at += size
        assert len(parts[-1]) == size, "truncated"
    assert at == len(blob), f"{len(blob) - at} bytes after the context"
    return parts


def bf_pipeline_config_class() -> type:
    """stratum.hal.barefoot.BfPipelineConfig, from bf.proto's field list."""
    f = descriptor_pb2.FileDescriptorProto(name="p4tap_test_bf.proto", package="stratum.hal.barefoot", syntax="proto3")
    msg = f.message_type.add(name="BfPipelineConfig")
    T, L = descriptor_pb2.FieldDescriptorProto, descriptor_pb2.FieldDescriptorProto
    profile = msg.nested_type.add(name="Profile")
    profile.field.add(name="profile_name", number=1, type=T.TYPE_STRING, label=L.LABEL_OPTIONAL)
    profile.field.add(name="context", number=2, type=T.TYPE_BYTES, label=L.LABEL_OPTIONAL)
    profile.field.add(name="binary", number=3, type=T.TYPE_BYTES, label=L.LABEL_OPTIONAL)
    profile.field.add(name="pipe_scope", number=4, type=T.TYPE_UINT32, label=L.LABEL_REPEATED)
    msg.field.add(name="p4_name", number=1, type=T.TYPE_STRING, label=L.LABEL_OPTIONAL)
    msg.field.add(name="bfruntime_info", number=2, type=T.TYPE_BYTES, label=L.LABEL_OPTIONAL)
    msg.field.add(name="profiles", number=3, type=T.TYPE_MESSAGE, label=L.LABEL_REPEATED,
                  type_name=".stratum.hal.barefoot.BfPipelineConfig.Profile")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("stratum.hal.barefoot.BfPipelineConfig"))


@pytest.mark.parametrize("target", TOFINO_TARGETS)
def test_pi_config_decodes_to_the_compiler_files(target):
    which = need(target, "pi")
    build, binary = TOFINO_TARGETS[target]
    name, got_bin, got_ctx = read_pi(which.device_config())
    assert name == PROGRAM_NAME.encode()
    assert got_bin == (Path(which.build) / "pipe" / binary).read_bytes()
    assert got_ctx == (Path(which.build) / "pipe" / "context.json").read_bytes()
    assert which.build.name == build


@pytest.mark.parametrize("target", TOFINO_TARGETS)
def test_stratum_config_decodes_to_the_compiler_files(target):
    which = need(target, "stratum")
    _, binary = TOFINO_TARGETS[target]
    config = bf_pipeline_config_class()()
    blob = which.device_config()
    config.ParseFromString(blob)
    assert config.p4_name == PROGRAM_NAME
    assert config.bfruntime_info == (which.build / "bfrt.json").read_bytes()
    assert len(config.profiles) == 1
    (profile,) = config.profiles
    assert profile.profile_name == "pipe" and list(profile.pipe_scope) == []
    assert profile.binary == (which.build / "pipe" / binary).read_bytes()
    assert profile.context == (which.build / "pipe" / "context.json").read_bytes()
    # Nothing the descriptor does not know: re-serialising gives the same bytes.
    assert config.SerializeToString() == blob


@pytest.mark.parametrize("target", TOFINO_TARGETS)
def test_tofino_pipeline_loads_the_way_bmv2s_does(target):
    which = need(target, "pi")
    pipeline = Pipeline.load(which)
    assert pipeline.device_config == which.device_config()
    assert pipeline.p4info.tables and pipeline.cookie != Pipeline.load().cookie
    # The TNA program keeps bmv2's names: the same tables, whatever their ids.
    assert {t.preamble.name for t in pipeline.p4info.tables} == {t.preamble.name for t in Pipeline.load().p4info.tables}


def test_bmv2_is_the_default_and_unknown_targets_are_refused():
    assert artifacts_for("bmv2") is P4TAP
    assert Pipeline.load(artifacts_for("bmv2")).device_config == P4TAP.bmv2_json.read_bytes()
    with pytest.raises(PipelineError, match="unknown target"):
        artifacts_for("tofino3")
    with pytest.raises(PipelineError, match="unknown device config format"):
        artifacts_for("tofino", "bfrt")


def test_the_config_file_names_the_target(tmp_path):
    from controller.config import ConfigError, load

    switch = '[[switch]]\nname = "s1"\naddress = "127.0.0.1:9559"\n'
    path = tmp_path / "p4tap.toml"
    path.write_text(switch)
    assert (load(path).target, load(path).device_config) == ("bmv2", "pi")
    path.write_text('[controller]\ntarget = "tofino2"\ndevice_config = "stratum"\n' + switch
                    + "max_clone_session_id = 1015\n")
    settings = load(path)
    assert settings.switches[0].max_clone_session_id == 1015
    which = artifacts_for(settings.target, settings.device_config)
    assert isinstance(which, TofinoArtifacts) and which.build.name == "t2na" and which.fmt == "stratum"
    path.write_text('[controller]\ntarget = "tofino3"\n' + switch)
    with pytest.raises(ConfigError, match="target must be one of bmv2, tofino, tofino2"):
        load(path)


@pytest.mark.parametrize("target", TOFINO_TARGETS)
@pytest.mark.parametrize("fmt", ["pi", "stratum"])
def test_the_pipeline_push_fits_the_message_limits(target, fmt):
    """5-7 MB, past gRPC's 4 MB default: the controller's channel allows 256 MB
    each way, as PI's server does (proto/server/pi_server.cpp:
    SetMaxReceiveMessageSize(256*1024*1024))."""
    from p4protos import p4runtime_pb2 as p4r

    from controller.switch.stream import _MAX_MESSAGE_BYTES

    pipeline = Pipeline.load(need(target, fmt))
    request = p4r.SetForwardingPipelineConfigRequest(device_id=0)
    request.config.p4info.CopyFrom(pipeline.p4info)
    request.config.p4_device_config = pipeline.device_config
    request.config.cookie.cookie = pipeline.cookie
    assert 4 << 20 < request.ByteSize() <= min(_MAX_MESSAGE_BYTES, 256 << 20)
