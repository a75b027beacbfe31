"""Sections of BENCHMARKS.md: every benchmark records the same facts
(what, when, on what, how run, how measured) before its own table."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone

from controller.pipeline import REPO_ROOT

BENCHMARKS = REPO_ROOT / "BENCHMARKS.md"


def machine() -> str:
    """This machine and the switch build the figures were taken on."""
    bmv2 = "not installed"
    if shutil.which("simple_switch_grpc"):
        out = subprocess.run(["simple_switch_grpc", "--version"], capture_output=True, text=True).stdout.strip()
        bmv2 = f"{out or '?'} (stock build, logging compiled in)"
    return (f"{platform.node() or 'unknown'}, {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}; "
            f"bmv2 {bmv2}; Python {platform.python_version()}")


def load_line(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    """The machine's load around a run (os.getloadavg() before and after): rates depend on it."""
    return (f"load average (1/5/15 min) {before[0]:.1f}/{before[1]:.1f}/{before[2]:.1f} at the start, "
            f"{after[0]:.1f}/{after[1]:.1f}/{after[2]:.1f} at the end ({os.cpu_count()} cores, shared with other jobs)")


def append(title: str, command: str, method: str, table: str, notes: tuple[str, ...] = ()) -> None:
    lines = [f"\n## {title}\n", f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}", f"- command: `{command}`", f"- method: {method}"]
    lines += [f"- {note}" for note in notes]
    with open(BENCHMARKS, "a") as f:
        f.write("\n".join(lines) + f"\n\n{table}\n")
