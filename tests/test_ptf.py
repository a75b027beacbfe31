"""The PTF data-plane suites, run against each switch target on veth pairs.

One pytest case per (target, PTF module): the fixture creates the veth
pairs, starts the target (bmv2 ``simple_switch_grpc`` or p4tap's softswitch)
on their switch ends and pushes the committed pipeline; `ptf` then drives
packets on the host ends. Everything is removed afterwards. A target that is
not available here skips with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bmv2_topo.bmv2_switch import TARGETS, Bmv2Switch, target_skip_reason
from bmv2_topo.veth import veth_pairs
from controller.pipeline import REPO_ROOT, Pipeline
from controller.switch import SwitchConnection
from ptf_tests.base import PORTS
from tests.conftest import needs_root

PTF_MODULES = ["forwarding", "intercept_basic", "intercept_wildcards", "intercept_agencies", "counters", "ets"]
# ETS (ptf_tests/ets.py) sends to priority queues up to 2; bmv2 drops priority >= this.
PRIORITY_QUEUES = 3
PTF = Path(sys.executable).with_name("ptf")

pytestmark = [needs_root]


@pytest.fixture(scope="module", params=TARGETS)
def switch(request, tmp_path_factory):
    target = request.param
    reason = target_skip_reason(target)
    if reason:
        pytest.skip(f"{target}: {reason}")
    logs = tmp_path_factory.mktemp(target)
    with veth_pairs(PORTS, prefix="p4tp") as pairs:
        sw = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, log_file=logs / f"{target}.log", target=target,
                        name=target, priority_queues=PRIORITY_QUEUES)
        sw.start()
        try:
            pipeline = Pipeline.load()
            with SwitchConnection(sw.grpc_address, election_id=(0, 1)) as conn:
                conn.set_pipeline(pipeline.p4info, pipeline.device_config, cookie=pipeline.cookie)
            yield sw, pairs, logs
        finally:
            sw.stop()


@pytest.mark.parametrize("module", PTF_MODULES)
def test_ptf(switch, module, tmp_path):
    sw, pairs, _ = switch
    assert sw.alive, f"{sw.target} died during an earlier PTF module (log: {sw.log_path})"
    command = [str(PTF), "--test-dir", str(REPO_ROOT / "ptf_tests"), "--pypath", str(REPO_ROOT),
               "--log-file", str(tmp_path / "ptf.log"), "--test-params",
               f"grpc_addr='{sw.grpc_address}';device_id=0", "--default-negative-timeout", "0.3"]
    for pair in pairs:
        command += ["--interface", f"{pair.port}@{pair.host_end}"]
    result = subprocess.run(command + [module], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        log = (tmp_path / "ptf.log").read_text(errors="replace")[-6000:] if (tmp_path / "ptf.log").exists() else ""
        pytest.fail(f"PTF {module} failed on {sw.target}:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}\n"
                    f"--- ptf.log tail ---\n{log}")
