"""The compiled p4tap pipeline: where its artifacts live and how to name its parts.

p4c's outputs (bmv2 JSON and P4Info; for Tofino, see controller.tofino_config)
are committed under build/, so a machine without p4c runs everything.
`Pipeline` loads them (any `Artifacts`: a P4Info and the device config its
switch takes, the only thing that differs per target) and answers the
questions every P4Runtime message needs: the id of a table, match field or
action parameter (controller.wire encodes the values). An object answers to
its full name, its alias and any dotted suffix of its name no other object of
its kind shares, as in p4runtime-shell's P4Info context (which pins a protobuf
this project has left behind, so the index is kept here).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

from google.protobuf import text_format
from p4protos import p4info_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"
P4SRC_DIR = REPO_ROOT / "p4src"


@dataclass(frozen=True)
class PipelineArtifacts:
    """The files p4c makes for one P4 program."""

    name: str
    source: Path  # top-level P4 file, relative to the repository root
    bmv2_json: Path
    p4info: Path

    def exists(self) -> bool:
        return self.bmv2_json.is_file() and self.p4info.is_file()

    def device_config(self) -> bytes:
        """bmv2 takes p4c's JSON as it is."""
        return self.bmv2_json.read_bytes()


class Artifacts(Protocol):
    """What `Pipeline.load` needs of a compiled program, whatever the target:
    the controller learns every other difference from the P4Info."""

    name: str
    p4info: Path

    def exists(self) -> bool: ...

    def device_config(self) -> bytes:
        """`ForwardingPipelineConfig.p4_device_config` as the target's server takes it."""
        ...


def artifacts(name: str) -> PipelineArtifacts:
    """Artifacts of a program known to the build (see the Makefile's `p4` target)."""
    sources = {
        "p4tap": Path("p4src/v1model/p4tap.p4"),
        "l2_minimal": Path("bench/p4src/l2_minimal.p4"),
    }
    out = BUILD_DIR / ("v1model" if name == "p4tap" else "bench")
    return PipelineArtifacts(name, sources[name], out / f"{name}.json", out / f"{name}.p4info.txtpb")


P4TAP = artifacts("p4tap")


class PipelineError(Exception):
    """The pipeline's artifacts are missing or do not have what the controller needs."""


#: The P4Info lists the controller looks names up in.
KINDS = ("tables", "actions", "counters", "direct_counters", "meters")


def name_index(objects) -> dict[str, object]:
    """P4Info objects of one kind by full name, and by alias or dotted suffix
    where no other object of the kind answers to the same."""
    def names(obj) -> set[str]:
        parts = obj.preamble.name.split(".")
        return {".".join(parts[i:]) for i in range(len(parts))} | ({obj.preamble.alias} - {""})

    counts = Counter(name for obj in objects for name in names(obj))
    index = {name: obj for obj in objects for name in names(obj) if counts[name] == 1}
    index.update({obj.preamble.name: obj for obj in objects})  # a full name always answers
    return index


class Pipeline:
    """A loaded P4Info plus its device config, with id lookups and value encoding."""

    def __init__(self, p4info: p4info_pb2.P4Info, device_config: bytes) -> None:
        self.p4info = p4info
        self.device_config = device_config
        self._by_name = {kind: name_index(getattr(p4info, kind)) for kind in KINDS}
        self._by_id = {obj.preamble.id: obj for kind in KINDS for obj in getattr(p4info, kind)}

    @classmethod
    def load(cls, which: Artifacts = P4TAP) -> Pipeline:
        if not which.exists():
            raise PipelineError(f"compiled pipeline {which.name!r} not found ({which}): run `make p4`")
        p4info = p4info_pb2.P4Info()
        text_format.Parse(which.p4info.read_text(), p4info)
        return cls(p4info, which.device_config())

    def _object(self, kind: str, name: str):
        try:
            return self._by_name[kind][name]
        except KeyError:
            raise PipelineError(f"the pipeline has no {kind.removesuffix('s').replace('_', ' ')} "
                                f"named {name!r}") from None

    def table_id(self, name: str) -> int:
        return self._object("tables", name).preamble.id

    def action_id(self, name: str) -> int:
        return self._object("actions", name).preamble.id

    def counter_id(self, name: str) -> int:
        return self._object("counters", name).preamble.id

    def direct_counter_id(self, name: str) -> int:
        return self._object("direct_counters", name).preamble.id

    def meter_id(self, name: str) -> int:
        return self._object("meters", name).preamble.id

    def match_field(self, table: str, field: str) -> p4info_pb2.MatchField:
        for mf in self._object("tables", table).match_fields:
            if mf.name == field:
                return mf
        raise PipelineError(f"table {table!r} has no match field {field!r}")

    def param(self, action: str, param: str) -> p4info_pb2.Action.Param:
        for p in self._object("actions", action).params:
            if p.name == param:
                return p
        raise PipelineError(f"action {action!r} has no parameter {param!r}")

    def name_of(self, object_id: int) -> str:
        try:
            return self._by_id[object_id].preamble.name
        except KeyError:
            raise PipelineError(f"the pipeline has no object with id {object_id:#x}") from None

    @cached_property
    def cookie(self) -> int:
        """A stable fingerprint of this pipeline, for verifying what a switch runs."""
        import hashlib

        digest = hashlib.sha256(self.p4info.SerializeToString(deterministic=True) + self.device_config)
        return int.from_bytes(digest.digest()[:8], "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


@lru_cache(maxsize=4096)  # a switch has few MACs, and every encapsulation entry names two
def mac_to_int(mac: str) -> int:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return int("".join(f"{int(p, 16):02x}" for p in parts), 16)
