"""Shared skips: each names what is missing and how to get it."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest

from bmv2_topo.bmv2_switch import TARGETS, target_skip_reason

SIMPLE_SWITCH_GRPC = shutil.which("simple_switch_grpc")
P4C = shutil.which("p4c-bm2-ss")
IS_ROOT = os.geteuid() == 0


def _tag_this_worker() -> None:
    """Under pytest-xdist each worker gets its own $P4TAP_NET_TAG (the run's
    own tag, if any, then the worker's number), so that workers running
    tests side by side never create, or delete, each other's veth pairs and
    namespaces; switches, agents and MDs already take free ports and
    temporary directories of their own. Child processes (the demo, the
    controller) inherit the tag."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        number = worker[2:]
        os.environ["P4TAP_NET_TAG"] = os.environ.get("P4TAP_NET_TAG", "")[: 3 - len(number)] + number


_tag_this_worker()

# "Needs a switch target": bmv2 where simple_switch_grpc is installed, else
# p4tap's softswitch; $P4TAP_TARGET=bmv2|softswitch chooses explicitly.
SWITCH_SKIP_REASON = target_skip_reason()
needs_switch = pytest.mark.skipif(SWITCH_SKIP_REASON is not None, reason=SWITCH_SKIP_REASON or "")
needs_bmv2 = needs_switch  # the old name; every test using it runs on whichever target resolves
needs_real_bmv2 = pytest.mark.skipif(
    SIMPLE_SWITCH_GRPC is None,
    reason="simple_switch_grpc not on PATH: build bmv2 with PI (README, Toolchain)",
)
needs_p4c = pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not on PATH: build p4c (README, Toolchain)")
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to create veth pairs and namespaces")


@pytest.fixture(params=TARGETS)
def target(request) -> str:
    """Each switch target in turn (bmv2, the softswitch); one that cannot run
    here skips, saying why. A module may define its own `target`."""
    reason = target_skip_reason(request.param)
    if reason is not None:
        pytest.skip(f"{request.param}: {reason}")
    return request.param


def pipeline_has_issue13_fix() -> bool:
    """Whether the committed pipeline (build/) was compiled from P4 that fixes
    issue 13: its filter tables key on the egress port (interface filters see
    transmitted traffic) and its resubmitted pass keeps the ingress port (ETS
    conditions it as untapped). Both came in one P4 change."""
    from controller.entries import filter_table
    from controller.pipeline import Pipeline, PipelineError
    from controller.plan import Side

    try:
        Pipeline.load().match_field(filter_table(4, Side.SRC), "egress_port")
    except PipelineError:
        return False
    return True


@contextmanager
def lab_network(tmp_path, prefix: str = "p4tc", **switch_kw):
    """bmv2 on fresh veth pairs for ptf_tests.base's five ports, and raw
    sockets on the host ends: (switch, {port: host interface}, wire)."""
    from bmv2_topo.bmv2_switch import Bmv2Switch
    from bmv2_topo.veth import veth_pairs
    from bmv2_topo.wire import Wire
    from ptf_tests.base import PORTS

    with veth_pairs(PORTS, prefix=prefix) as pairs:
        bmv2 = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, log_file=tmp_path / "bmv2.log", **switch_kw)
        bmv2.start()
        try:
            with Wire(p.host_end for p in pairs) as wire:
                yield bmv2, {p.port: p.host_end for p in pairs}, wire
        finally:
            bmv2.stop()


@pytest.fixture
def network(tmp_path):
    """lab_network with the switch's defaults."""
    with lab_network(tmp_path) as net:
        yield net


# ETS sends to priority queues up to 2; bmv2 drops a packet whose priority is
# the number of queues or more.
ETS_PRIORITY_QUEUES = 3


@pytest.fixture
def ets_network(tmp_path):
    """lab_network on a switch with ETS_PRIORITY_QUEUES egress queues."""
    with lab_network(tmp_path, prefix="p4tq", priority_queues=ETS_PRIORITY_QUEUES) as net:
        yield net
