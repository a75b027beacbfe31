"""The committed p4c outputs in build/ are what p4src/ compiles to.

Where p4c is present the programs are compiled again, exactly as the
Makefile does, and compared byte for byte; everywhere, the committed P4Info
must name every table, action and field the controller addresses.
"""

from __future__ import annotations

import subprocess

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
