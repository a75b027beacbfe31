"""Which switch runs the data plane here: bmv2 or p4tap's softswitch.

``target="bmv2"`` runs ``simple_switch_grpc``; ``target="softswitch"`` runs
p4tap's own software switch (``python -m softswitch``, same command line,
same behaviour). Unset, :func:`resolve_target` picks ``$P4TAP_TARGET`` if set,
else bmv2 where ``simple_switch_grpc`` is on PATH, else softswitch.

Tests, benchmarks and the demo ask this before they build anything, to skip
(or refuse) with a clear reason where the switch they need is missing; kept
apart from the launcher (bmv2_topo.bmv2_switch) so that asking starts nothing.
"""

from __future__ import annotations

import os
import shutil

__all__ = ["SIMPLE_SWITCH_GRPC", "SKIP_REASON", "TARGETS", "TARGET_ENV", "Bmv2Error", "find_simple_switch_grpc",
           "resolve_target", "skip_reason", "target_skip_reason"]

SIMPLE_SWITCH_GRPC = "simple_switch_grpc"
SKIP_REASON = "simple_switch_grpc not on PATH: build bmv2 with PI (see README, 'Toolchain')"
TARGETS = ("bmv2", "softswitch")
TARGET_ENV = "P4TAP_TARGET"


class Bmv2Error(RuntimeError):
    """simple_switch_grpc could not be started, or died."""


def resolve_target(target: str | None = None) -> str:
    """The switch target to run: ``target`` if given, else ``$P4TAP_TARGET``,
    else ``bmv2`` where simple_switch_grpc is on PATH, else ``softswitch``."""
    choice = target or os.environ.get(TARGET_ENV, "").strip() or None
    if choice is None:
        return "bmv2" if find_simple_switch_grpc() else "softswitch"
    if choice not in TARGETS:
        raise Bmv2Error(f"unknown switch target {choice!r} (${TARGET_ENV} or target=): use one of {', '.join(TARGETS)}")
    return choice


def target_skip_reason(target: str | None = None) -> str | None:
    """Why a switch of ``target`` (default: :func:`resolve_target`) cannot run here, or None."""
    try:
        t = resolve_target(target)
    except Bmv2Error as e:
        return str(e)
    return SKIP_REASON if t == "bmv2" and not find_simple_switch_grpc() else None


def find_simple_switch_grpc() -> str | None:
    """Path of ``simple_switch_grpc`` on PATH, or None."""
    return shutil.which(SIMPLE_SWITCH_GRPC)


def skip_reason() -> str | None:
    """Why bmv2 tests cannot run here (for ``pytest.skip``), or None if they can."""
    return None if find_simple_switch_grpc() else SKIP_REASON
