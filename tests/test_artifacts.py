"""The committed p4c outputs in build/ are what p4src/ compiles to.

Where p4c is present the programs are compiled again, exactly as the
Makefile does, and compared byte for byte; everywhere, the committed P4Info
must name every table, action and field the controller addresses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from controller import entries
from controller.pipeline import REPO_ROOT, Pipeline, artifacts
from controller.plan import Side
from tests.conftest import P4C, needs_p4c


@needs_p4c
@pytest.mark.parametrize("program", ["p4tap", "l2_minimal"])
def test_committed_artifacts_match_the_source(program, tmp_path):
    want = artifacts(program)
    out_json, out_p4info = tmp_path / "out.json", tmp_path / "out.p4info.txtpb"
    result = subprocess.run(
        [P4C, "--arch", "v1model", "--std", "p4-16", "--p4runtime-files", str(out_p4info), "-o", str(out_json),
         str(want.source)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, f"p4c failed on {want.source}:\n{result.stderr}"
    stale = [p.name for p, q in ((want.bmv2_json, out_json), (want.p4info, out_p4info))
             if not p.exists() or p.read_bytes() != q.read_bytes()]
    assert not stale, f"{', '.join(stale)} stale against {want.source}: run `make p4` and commit build/"


def test_pipeline_has_everything_the_controller_addresses():
    pipeline = Pipeline.load()
    names = [entries.MERGE_TABLE, entries.ENCAP_TABLE, f"{entries.BRIDGING}.l2_table",
             f"{entries.ROUTING}.ipv4_routes", f"{entries.ROUTING}.ipv6_routes",
             f"{entries.VRF}.port_vrf", f"{entries.VRF}.port_vlan_vrf"]
    names += [entries.gate_table(f, s) for f in (4, 6) for s in Side]
    names += [entries.filter_table(f, s) for f in (4, 6) for s in Side]
    for table in names:
        assert pipeline.table_id(table)
    for family in (4, 6):
        for side in Side:
            for field in ("vrf", *entries.FILTER_TERNARY_FIELDS, *entries.FILTER_RANGE_FIELDS):
                if field == "flow_label" and family == 4:
                    continue
                assert pipeline.match_field(entries.filter_table(family, side), field)
    assert pipeline.counter_id(entries.ENCAP_DROPS_COUNTER)
    assert pipeline.param(entries.INTERCEPT_ACTION, "session").bitwidth == 32
    for action in ("l2_forward", "l2_flood", "to_router"):
        assert pipeline.action_id(f"{entries.BRIDGING}.{action}")
    for family in (4, 6):
        for side in Side:
            assert pipeline.action_id(f"{entries.gate_control(family, side)}.open_gate")
    assert pipeline.param(f"{entries.EGRESS}.intercept_encap.encap_ipv6", "dst_addr").bitwidth == 128


# Tofino 1 and 2 (build/tna, build/t2na; the Makefile's tofino_build). The
# compiler stamps every run: manifest.json and context.json carry build_date,
# run_id and compilation_time, and name the output directory, and the binary
# embeds the run too; bfrt.json lists the compiler's own debug-snapshot
# tables (pipe.snapshot.*) in an order, and with ids, that vary from run to
# run (seen on Tofino 2). So what is compared is what the source decides: the
# P4Info byte for byte, bfrt.json as JSON without the snapshot tables,
# context.json and manifest.json as JSON without those stamps (nor the
# checkout's path and the command line, in manifest.json) and with the
# output directory read as build/<arch>, and the binary not at all (its size
# is checked to stay under 2 MiB).
P4C_BAREFOOT = shutil.which("p4c-barefoot")
TOFINO_P4C = shutil.which("p4c")
needs_tofino_p4c = pytest.mark.skipif(
    P4C_BAREFOOT is None or TOFINO_P4C is None,
    reason="p4c-barefoot (p4c's open Tofino backend) not on PATH: ../shared/toolchain/install (README, Tofino); "
           "build/tna and build/t2na are used as committed",
)
TOFINO_BUILDS = {"tna": ("tofino", []), "t2na": ("tofino2", ["-Xp4c=--no-clot"])}
TOFINO_FLAGS = ["--p4runtime-force-std-externs"]
# Facts of the machine, not of the source: where the checkout and p4c are.
TOFINO_STAMPS = {"build_date", "run_id", "compilation_time", "src_root", "compile_command"}
TOFINO_SOURCE = Path("p4src/tna/p4tap.p4")


def _unstamped(value, out_dir: str, arch: str):
    if isinstance(value, dict):
        return {k: _unstamped(v, out_dir, arch) for k, v in value.items() if k not in TOFINO_STAMPS}
    if isinstance(value, list):
        return [_unstamped(v, out_dir, arch) for v in value]
    if isinstance(value, str):
        return value.replace(out_dir, f"build/{arch}")
    return value


def _without_snapshots(bfrt: dict) -> dict:
    dropped = {t["id"] for t in bfrt["tables"] if ".snapshot." in t["name"]}
    tables = []
    for t in bfrt["tables"]:
        if t["id"] in dropped:
            continue
        if "depends_on" in t:
            t = {**t, "depends_on": [d for d in t["depends_on"] if d not in dropped]}
        tables.append(t)
    return {**bfrt, "tables": tables}


@needs_tofino_p4c
@pytest.mark.parametrize("arch", sorted(TOFINO_BUILDS))
def test_committed_tofino_artifacts_match_the_source(arch, tmp_path):
    target, flags = TOFINO_BUILDS[arch]
    want = REPO_ROOT / "build" / arch
    out = tmp_path / arch
    result = subprocess.run(
        [TOFINO_P4C, "--target", target, "--arch", arch, *flags, *TOFINO_FLAGS,
         "--p4runtime-files", str(out / "p4info.txtpb"), "-o", str(out), str(TOFINO_SOURCE)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, f"p4c --target {target} failed on {TOFINO_SOURCE}:\n{result.stderr[-4000:]}"
    stale = []
    p4info = "p4info.txtpb"
    if not (want / p4info).exists() or (want / p4info).read_bytes() != (out / p4info).read_bytes():
        stale.append(p4info)
    if not (want / "bfrt.json").exists() or (_without_snapshots(json.loads((want / "bfrt.json").read_text()))
                                             != _without_snapshots(json.loads((out / "bfrt.json").read_text()))):
        stale.append("bfrt.json")
    for name in ("manifest.json", "pipe/context.json"):
        if not (want / name).exists():
            stale.append(name)
            continue
        committed = _unstamped(json.loads((want / name).read_text()), f"build/{arch}", arch)
        fresh = _unstamped(json.loads((out / name).read_text()), str(out), arch)
        if committed != fresh:
            stale.append(name)
    binary = want / "pipe" / f"{target}.bin"
    if not binary.exists():
        stale.append(f"pipe/{target}.bin")
    assert not stale, f"build/{arch}: {', '.join(stale)} stale against {TOFINO_SOURCE}: run `make p4` and commit build/"
    assert binary.stat().st_size < 2 * 1024 * 1024, f"{binary} is {binary.stat().st_size} bytes: keep it out of git"


@pytest.mark.parametrize("arch", sorted(TOFINO_BUILDS))
def test_tofino_pipeline_has_the_controllers_names(arch):
    """Same table, action and field names as bmv2's P4Info: the controller
    learns what differs (widths, ids, sizes) from P4Info alone."""
    from google.protobuf import text_format
    from p4protos import p4info_pb2

    path = REPO_ROOT / "build" / arch / "p4info.txtpb"
    if not path.exists():
        pytest.skip(f"{path} not committed")
    tofino = text_format.Parse(path.read_text(), p4info_pb2.P4Info())
    bmv2 = Pipeline.load().p4info

    def names(info):
        return ({t.preamble.name: sorted(f.name for f in t.match_fields) for t in info.tables},
                {a.preamble.name: sorted(p.name for p in a.params) for a in info.actions},
                sorted(c.preamble.name for c in info.counters) + sorted(c.preamble.name for c in info.direct_counters),
                sorted(m.preamble.name for m in info.meters))

    assert names(tofino) == names(bmv2)
