"""What a benchmark needs before it starts, said once and clearly."""

from __future__ import annotations

import os
import shutil
import sys

from bmv2_topo.bmv2_switch import find_simple_switch_grpc
from controller.pipeline import P4TAP


def missing(bmv2: bool = True, root: bool = True, tools: tuple[str, ...] = (), pipeline: bool = False) -> str | None:
    """Why the benchmark cannot run here, or None (`pipeline`: it needs p4tap compiled in build/)."""
    absent = ([] if not bmv2 or find_simple_switch_grpc() else ["simple_switch_grpc (README, Toolchain)"])
    absent += [tool for tool in tools if not shutil.which(tool)]
    if absent:
        return f"not on PATH: {', '.join(absent)}; nothing to measure"
    if pipeline and not P4TAP.exists():
        return "compiled pipeline missing in build/: run `make p4`"
    if root and os.geteuid() != 0:
        return "needs root (it creates veth pairs)"
    return None


def check(**needs) -> int:
    """0 when the benchmark can run; else print why to stderr and return 2 (its exit status)."""
    reason = missing(**needs)
    if reason is None:
        return 0
    print(reason, file=sys.stderr)
    return 2
