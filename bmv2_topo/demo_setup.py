"""What a demo run settles before it builds anything: its options, whether it
can run here, and a fresh output directory.

Everything here answers before the first namespace, veth or process exists,
so a demo that cannot run says why in one line and leaves the machine as it
was (tests/test_e2e_demo.py checks that). Kept apart from the run itself
(bmv2_topo.demo), which only starts once these checks passed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bmv2_topo.bmv2_switch import target_skip_reason
from bmv2_topo.layouts import LAYOUTS
from bmv2_topo.mininet_topo import mininet_skip_reason
from controller.pipeline import REPO_ROOT

__all__ = ["MARKER", "OUT_DIR", "DemoError", "Options", "host_backend", "preflight", "prepare_out_dir"]

OUT_DIR = REPO_ROOT / "run" / "demo"
MARKER = ".p4tap-demo"


class DemoError(RuntimeError):
    """The demo cannot run, or could not get going: the message says why."""


@dataclass
class Options:
    variant: str = "single"
    hosts: str = "auto"  # auto (Mininet where installed), mininet, netns
    out_dir: Path = OUT_DIR
    lifetime: float = 120.0
    target: str | None = None


def host_backend(choice: str) -> str:
    """'mininet' or 'netns' for --hosts auto|mininet|netns."""
    if choice == "netns":
        return "netns"
    reason = mininet_skip_reason()
    if choice == "mininet":
        if reason:
            raise DemoError(f"--hosts mininet: {reason}")
        return "mininet"
    return "netns" if reason else "mininet"


def preflight(options: Options) -> str | None:
    """Why the demo cannot run here, or None."""
    if os.geteuid() != 0:
        return "the demo builds network namespaces and veth pairs: run it as root (sudo make run)"
    reason = target_skip_reason(options.target)
    if reason is not None:
        return f"{reason}; or run the demo on p4tap's software switch: P4TAP_TARGET=softswitch make run"
    for tool, package in (("ip", "iproute2"), ("ethtool", "ethtool")):
        if shutil.which(tool) is None:
            return f"the `{tool}` command is missing: make setup installs it (apt-get install {package})"
    if options.variant not in LAYOUTS:
        return f"unknown variant {options.variant!r}: use one of {', '.join(LAYOUTS)}"
    return None


def prepare_out_dir(out: Path) -> None:
    """A fresh output directory: the previous run's files go, nothing else is touched."""
    ours = out == OUT_DIR.resolve() or (out / MARKER).exists()  # run/ is the demo's own (and git-ignored)
    if out.exists() and any(out.iterdir()) and not ours:
        raise DemoError(f"{out} exists and is not a p4tap demo directory: choose another --out-dir")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, mode=0o700)
    (out / MARKER).write_text("created by bmv2_topo/demo.py; removed and rebuilt by every run\n")
