"""The device config a Tofino P4Runtime server takes, built from build/tna or build/t2na.

bmv2 takes p4c's JSON as `p4_device_config`; a Tofino server takes the
compiler's pipeline binary (tofino.bin / tofino2.bin) and context.json,
packed in one of two layouts. Both are built here from the committed
compiler outputs; nothing else about Tofino differs for the controller
(it learns ids and widths from the TNA P4Info, as for bmv2).

* ``pi``: the packing of PI's Tofino target, which bf_switchd's P4Runtime
  server (PI's proto frontend over bf-drivers) and Stratum's older ``stratum_bf``
  read. Layout, as p4runtime-shell's ``config_builders/tofino.py`` (p4lang/
  p4runtime-shell) writes it: a 4-byte little-endian length and the program
  name, then the same for tofino.bin, then for context.json. No bfrt.json:
  that server derives what it needs from the P4Info.
* ``stratum``: Stratum's ``BfPipelineConfig`` protobuf (stratum/stratum,
  ``stratum/hal/lib/barefoot/bf.proto``; its ``bf_pipeline_builder`` makes
  the same from the compiler's .conf), which ``stratum_bfrt`` requires:
  ``p4_name`` (1), ``bfruntime_info`` (2: bfrt.json), ``profiles`` (3:
  ``profile_name`` 1, ``context`` 2, ``binary`` 3, ``pipe_scope`` 4). p4tap has
  one profile, "pipe" (manifest.json's pipe name), and leaves ``pipe_scope``
  empty: the same program on every pipe.

Either is 5-7 MB, past gRPC's 4 MB default: the controller's channel allows
256 MB (controller/switch/stream.py), as PI's server does (p4lang/PI
proto/server/pi_server.cpp, SetMaxReceiveMessageSize(256*1024*1024)).

The protobuf is written by hand (four fields) so that no generated Stratum
module is needed; tests/test_tofino_config.py decodes it with a descriptor
transcribed from bf.proto, and the PI layout with a reader written from the
layout above, and gets the files back byte for byte.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from controller.pipeline import BUILD_DIR, P4TAP, Artifacts, PipelineError

PROGRAM_NAME = "p4tap"
FORMATS = ("pi", "stratum")
TARGETS = {"bmv2": None, "tofino": "tna", "tofino2": "t2na"}  # target -> build/ directory


@dataclass(frozen=True)
class TofinoArtifacts:
    """One Tofino build (build/tna or build/t2na) and the layout its server takes."""

    name: str
    build: Path
    binary_name: str  # tofino.bin or tofino2.bin
    fmt: str = "pi"

    @property
    def p4info(self) -> Path:
        return self.build / "p4info.txtpb"

    @property
    def bfrt(self) -> Path:
        return self.build / "bfrt.json"

    @property
    def profile(self) -> str:
        """The pipeline's name in manifest.json (p4c-barefoot calls it "pipe")."""
        manifest = json.loads((self.build / "manifest.json").read_text())
        return manifest["programs"][0]["pipes"][0]["pipe_name"]

    @property
    def context(self) -> Path:
        return self.build / self.profile / "context.json"

    @property
    def binary(self) -> Path:
        return self.build / self.profile / self.binary_name

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.p4info, self.build / "manifest.json", self.bfrt)) and \
            self.context.is_file() and self.binary.is_file()

    def device_config(self) -> bytes:
        if self.fmt == "pi":
            return pi_config(PROGRAM_NAME, self.binary.read_bytes(), self.context.read_bytes())
        return bf_pipeline_config(PROGRAM_NAME, self.bfrt.read_bytes(), self.profile,
                                  self.context.read_bytes(), self.binary.read_bytes())


def artifacts_for(target: str, fmt: str = "pi") -> Artifacts:
    """The compiled p4tap a switch of `target` runs ("bmv2", "tofino", "tofino2")."""
    if target not in TARGETS:
        raise PipelineError(f"unknown target {target!r}: one of {', '.join(TARGETS)}")
    if fmt not in FORMATS:
        raise PipelineError(f"unknown device config format {fmt!r}: one of {', '.join(FORMATS)}")
    build = TARGETS[target]
    if build is None:
        return P4TAP
    return TofinoArtifacts(f"p4tap ({target})", BUILD_DIR / build, f"{target}.bin", fmt)


# -- PI's packing -----------------------------------------------------------

def _sized(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def pi_config(program: str, binary: bytes, context: bytes) -> bytes:
    """PI's Tofino device config: name, tofino.bin, context.json, each after its length."""
    return _sized(program.encode()) + _sized(binary) + _sized(context)


# -- Stratum's BfPipelineConfig, written by hand ------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2); proto3 omits empty ones."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data if data else b""


def bf_pipeline_config(program: str, bfrt: bytes, profile: str, context: bytes, binary: bytes) -> bytes:
    """Stratum's BfPipelineConfig with one profile (fields in number order, as protobuf writes them)."""
    body = _field(1, profile.encode()) + _field(2, context) + _field(3, binary)
    return _field(1, program.encode()) + _field(2, bfrt) + _field(3, body)
