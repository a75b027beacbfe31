"""Benchmark: what the compiled pipeline takes of Tofino 1 and Tofino 2.

Reads the compiler's own output (build/tna/pipe/context.json and
build/t2na/pipe/context.json, committed by `make p4`; or --build DIR for a
fresh compile): the stages each gress uses, and per table its stages, its
size (entries, as P4Info says) and the TCAM and SRAM blocks it holds with
everything attached to it (action data, direct counters, meters), as a
share of the chip. Nothing is run on a switch: this is what the compiler
placed, not a measurement of traffic.

    .venv/bin/python -m bench.tofino_resources [--record]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import record
from controller.pipeline import REPO_ROOT

# Per MAU stage, on both chips: 24 TCAM blocks (512 x 44 bits) and 80 SRAM
# blocks (1024 x 128 bits); Tofino 1 has 12 stages per gress, Tofino 2 20.
CHIPS = {"tna": ("Tofino 1", 12), "t2na": ("Tofino 2", 20)}
TCAM_PER_STAGE = 24
SRAM_PER_STAGE = 80


@dataclass
class TableUse:
    name: str
    gress: str
    size: int
    kind: str
    stages: set[int] = field(default_factory=set)
    tcam: int = 0
    sram: int = 0


def _allocations(node, stage=None):
    """Yield (stage, memory_type, units) for every memory allocation below node."""
    if isinstance(node, dict):
        stage = node.get("stage_number", stage)
        alloc = node.get("memory_resource_allocation")
        if isinstance(alloc, dict):
            units = sum(len(u.get("memory_units", [])) for u in alloc.get("memory_units_and_vpns", []))
            yield stage, alloc.get("memory_type", "?"), units
        for key, value in node.items():
            if key != "memory_resource_allocation":
                yield from _allocations(value, stage)
    elif isinstance(node, list):
        for value in node:
            yield from _allocations(value, stage)


def table_use(context: dict) -> tuple[list[TableUse], dict[str, int]]:
    """Match tables with what is attached to them folded in, and stages per gress."""
    by_name = {t["name"]: t for t in context["tables"]}
    attached_to: dict[str, str] = {}
    for t in context["tables"]:
        if t.get("table_type") != "match":
            continue
        for ref_key in ("action_data_table_refs", "statistics_table_refs", "meter_table_refs",
                        "stateful_table_refs", "selection_table_refs"):
            for ref in t.get(ref_key, []):
                attached_to[ref["name"]] = t["name"]
    uses: dict[str, TableUse] = {}
    for t in context["tables"]:
        owner = attached_to.get(t["name"], t["name"])
        if owner not in by_name or by_name[owner].get("table_type") != "match":
            owner = t["name"]
        head = by_name[owner]
        kind = head.get("match_attributes", {}).get("match_type", head.get("table_type", "?"))
        use = uses.setdefault(owner, TableUse(owner, head.get("direction", "?"), head.get("size", 0), kind))
        for stage, mem, units in _allocations(t):
            if stage is not None:
                use.stages.add(stage)
            if mem == "tcam":
                use.tcam += units
            elif mem in ("sram", "map_ram"):
                use.sram += units
    # Stages a gress uses: up to the last one holding any of its tables
    # (mau_stage_characteristics lists every stage of the chip).
    stages: dict[str, int] = defaultdict(int)
    for t in context["tables"]:
        for stage, _, _ in _allocations(t):
            if stage is not None and stage >= 0:
                stages[t.get("direction", "?")] = max(stages[t.get("direction", "?")], stage + 1)
    for t in context["tables"]:
        for st in t.get("match_attributes", {}).get("stage_tables", []):
            stages[t.get("direction", "?")] = max(stages[t.get("direction", "?")], st["stage_number"] + 1)
    return [u for u in uses.values() if u.tcam or u.sram or u.stages], dict(stages)


def phv_containers(context: dict) -> dict[str, int]:
    """PHV containers holding a field, per gress (any stage)."""
    used: dict[str, set[int]] = defaultdict(set)
    for per_stage in context.get("phv_allocation", []):
        for gress, containers in per_stage.items():
            if isinstance(containers, list):
                for c in containers:
                    if c.get("records"):
                        used[gress].add(c["phv_number"])
    return {g: len(v) for g, v in used.items()}


def report(build: Path, arch: str) -> str:
    chip, stages_max = CHIPS[arch]
    context = json.loads((build / arch / "pipe" / "context.json").read_text())
    manifest = json.loads((build / arch / "manifest.json").read_text())
    uses, stages = table_use(context)
    phv = phv_containers(context)
    tcam_total, sram_total = stages_max * TCAM_PER_STAGE, stages_max * SRAM_PER_STAGE
    lines = [f"**{chip}** (`--arch {arch}`, p4c-barefoot {manifest.get('compiler_version', '?').split()[0]}, "
             f"compile {float(manifest.get('compilation_time', 0)):.0f} s wall): stages used: "
             + ", ".join(f"{g} {n} of {stages_max}" for g, n in sorted(stages.items()))
             + "; PHV containers holding fields: " + ", ".join(f"{g} {n}" for g, n in sorted(phv.items())),
             "",
             "| table | gress | match | entries | stages | TCAM blocks | SRAM blocks | TCAM share | SRAM share |",
             "|---|---|---|---:|---|---:|---:|---:|---:|"]
    for u in sorted(uses, key=lambda u: (u.gress, min(u.stages or {99}), u.name)):
        if u.name.startswith(("tbl_", "cond-")) and not u.tcam and u.sram <= 1:
            continue   # the compiler's own one-action tables
        st = sorted(u.stages)
        span = f"{st[0]}" if len(st) == 1 else f"{st[0]}-{st[-1]}" if st else "-"
        lines.append(f"| {u.name} | {u.gress} | {u.kind} | {u.size:,} | {span} | {u.tcam} | {u.sram} | "
                     f"{100 * u.tcam / tcam_total:.1f}% | {100 * u.sram / sram_total:.1f}% |")
    t = sum(u.tcam for u in uses)
    s = sum(u.sram for u in uses)
    lines.append(f"| **all tables** | | | | | {t} | {s} | {100 * t / tcam_total:.1f}% | {100 * s / sram_total:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=REPO_ROOT / "build", help="holds tna/ and t2na/ (default build/)")
    parser.add_argument("--record", action="store_true", help="append the figures to BENCHMARKS.md")
    args = parser.parse_args()
    table = "\n\n".join(report(args.build, arch) for arch in CHIPS if (args.build / arch / "pipe").exists())
    print(table)
    if args.record:
        record.append(
            "tofino_resources: what p4tap takes of Tofino 1 and 2 (compiler placement)",
            ".venv/bin/python -m bench.tofino_resources --record",
            "read from the compiler's context.json (build/tna, build/t2na, as `make p4` writes them): stages "
            "per gress up to the last one holding a table of it; per match table, the TCAM and SRAM blocks of "
            "every stage table and of what is attached to it (action data, counters, meters); shares against 24 TCAM and 80 SRAM "
            "blocks per stage and gress-independent totals (12 stages on Tofino 1, 20 on Tofino 2). No model or "
            "hardware ran: these are placements, not traffic.",
            table,
        )


if __name__ == "__main__":
    main()
