"""The compiler's pipeline layer: the ingress and egress control graphs.

Each table, conditional and action call becomes one node function returning
the next node; each table node does its lookup in the :class:`Table` it is
bound to, so entries P4Runtime writes are seen by the next packet.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LoadError, Unsupported
from ..tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, VALID, KeyField, Table
from .codegen import _hex, _ind
from .parser import Parsers


class Pipelines(Parsers):
    """Compiles the pipelines and their tables (over :class:`Parsers`)."""

    # ================================================================== pipelines

    def _load_pipelines(self) -> None:
        pipes = {p["name"]: p for p in self.json.get("pipelines", []) or []}
        for needed in ("ingress", "egress"):
            if needed not in pipes:
                raise LoadError(f"the JSON has no '{needed}' pipeline")
        for name in pipes:
            if name not in ("ingress", "egress"):
                raise Unsupported(f"pipeline {name!r} (simple_switch runs 'ingress' and 'egress')")
        self._node_fn: dict[tuple[str, str], str] = {}
        for pname in ("ingress", "egress"):
            p = pipes[pname]
            if p.get("action_profiles"):
                names = ", ".join(a.get("name", "?") for a in p["action_profiles"])
                raise Unsupported(f"action profiles / selectors ({names})", f"pipeline {pname}")
            nodes: dict[str, tuple[str, dict]] = {}
            for t in p.get("tables", []):
                nodes[t["name"]] = ("table", t)
            for c in p.get("conditionals", []):
                nodes[c["name"]] = ("cond", c)
            for a in p.get("action_calls", []) or []:
                nodes[a["name"]] = ("call", a)
            for i, name in enumerate(nodes):
                self._node_fn[(pname, name)] = f"n_{pname}_{i}"

            def ref(target: str | None, where: str, pname: str = pname) -> str:
                if target is None:
                    return "None"
                fn = self._node_fn.get((pname, target))
                if fn is None:
                    raise LoadError(f"unknown control node {target!r} (in {where})")
                return fn

            for name, (kind, obj) in nodes.items():
                fn = self._node_fn[(pname, name)]
                where = f"{pname} {kind} {name}"
                if kind == "cond":
                    cond = self._bool(obj["expression"], where, {})
                    self.g.emit([f"def {fn}(P, F, V):",
                                 f"    return {ref(obj.get('true_next'), where)} if {cond} else {ref(obj.get('false_next'), where)}"])
                elif kind == "call":
                    act = self.actions.get(int(obj["action_id"]))
                    if act is None:
                        raise LoadError(f"unknown action id {obj['action_id']} (in {where})")
                    self.g.emit([f"def {fn}(P, F, V):",
                                 f"    a_{act.jid}(P, F, V, ())",
                                 f"    return {ref(obj.get('next_node'), where)}"])
                else:
                    self._table_node(fn, pname, obj, where, ref)
            init = p.get("init_table")
            self.g.emit([f"def pipe_{pname}(P):",
                         "    F = P.F", "    V = P.V",
                         f"    n = {ref(init, f'pipeline {pname}')}",
                         "    while n is not None and not P.exit:",
                         "        n = n(P, F, V)"])

    def _table_node(self, fn: str, pname: str, t: dict, where: str, ref: Callable) -> None:
        name = t["name"]
        ttype = t.get("type", "simple")
        if ttype != "simple":
            raise Unsupported(f"table implementation {ttype!r} (action profile/selector)", where)
        if t.get("support_timeout"):
            raise Unsupported("idle timeout (support_timeout)", where)
        keys: list[KeyField] = []
        key_src: list[str] = []
        for k in t.get("key", []):
            mt = k.get("match_type")
            tgt = k.get("target")
            kname = k.get("name") or (".".join(tgt) if isinstance(tgt, list) else str(tgt))
            if mt == "valid":
                h = self.header(tgt if isinstance(tgt, str) else tgt[0], where)
                src, width = f"(1 if V[{h.idx}] else 0)", 1
                kind = VALID
            elif mt in ("exact", "lpm", "ternary", "range", "optional"):
                if isinstance(tgt, list) and len(tgt) == 2 and tgt[1] == "$valid$":
                    h = self.header(tgt[0], where)
                    src, width = f"(1 if V[{h.idx}] else 0)", 1
                else:
                    fi = self.field(tgt, where)
                    if fi.vl:
                        raise Unsupported("matching on a variable-length field", where)
                    src = f"(F[{fi.slot}] & {fi.mask})" if fi.signed else f"F[{fi.slot}]"
                    width = fi.width
                kind = {"exact": EXACT, "lpm": LPM, "ternary": TERNARY, "range": RANGE, "optional": OPTIONAL}[mt]
            else:
                raise Unsupported(f"match type {mt!r}", where)
            if k.get("mask") is not None:
                src = f"({src} & {_hex(k['mask'], where)})"
            keys.append(KeyField(kind, width, kname, src))
            key_src.append(src)
        if sum(1 for k in keys if k.kind == LPM) > 1:
            raise Unsupported("more than one LPM field in a table", where)
        meter = None
        if t.get("direct_meters"):
            meter = self.meters.get(t["direct_meters"])
            if meter is None:
                raise LoadError(f"unknown direct meter {t['direct_meters']!r} (in {where})")
        immutable = bool(t.get("entries"))
        table = Table(name, int(t["id"]), keys, int(t.get("max_size", 1024)), bool(t.get("with_counters", False)),
                      meter, immutable)
        table.pipeline = pname  # type: ignore[attr-defined]
        table.node_fn = fn      # type: ignore[attr-defined]
        table.where = where     # type: ignore[attr-defined]
        ids = t.get("action_ids", [])
        anames = t.get("actions", [])
        for aid in ids:
            act = self.actions.get(int(aid))
            if act is None:
                raise LoadError(f"unknown action id {aid} (in {where})")
            table.actions[act.name] = act
            table.actions_by_jid[act.jid] = act
        if not ids and anames:
            for an in anames:
                acts = [a for a in self.actions.values() if a.name == an]
                if not acts:
                    raise LoadError(f"unknown action {an!r} (in {where})")
                table.actions[an] = acts[0]
                table.actions_by_jid[acts[0].jid] = acts[0]
        nt = t.get("next_tables", {}) or {}
        if "__HIT__" in nt or "__MISS__" in nt:
            table.uses_hit_miss = True
            table.next_hit = ref(nt.get("__HIT__"), where)
            table.next_miss = ref(nt.get("__MISS__"), where)
        else:
            for an, target in nt.items():
                table.next_by_action[an] = ref(target, where)
        de = t.get("default_entry")
        if de is not None:
            act = self.actions.get(int(de["action_id"]))
            if act is None:
                raise LoadError(f"unknown default action id {de['action_id']} (in {where})")
            data = tuple(_hex(x, where) for x in de.get("action_data", []))
            if len(data) != len(act.params):
                raise LoadError(f"default action {act.name} of {name} has {len(data)} arguments, expects {len(act.params)}")
            table.initial_default = (act, data)
            table.default_const = bool(de.get("action_const", False))
            table.default_entry_const = bool(de.get("action_entry_const", False))
        self.tables[name] = table
        self._table_entries_json[name] = t.get("entries", []) or []

        tc = self.g.const(table, "tbl")
        body: list[str] = []
        ex = [key_src[i] for i in table.exact_pos]
        if not keys:
            body.append("e = None")
        elif table.mode == "exact":
            if len(ex) == 1:
                body.append(f"e = {tc}.exact_map.get({ex[0]})")
            else:
                body.append(f"e = {tc}.exact_map.get(({', '.join(ex)},))")
        elif table.mode == "lpm":
            body.append(f"e = {tc}.lookup_lpm(({''.join(x + ', ' for x in ex)}), {key_src[table.lpm_pos]})")
        else:
            exs = f"({''.join(x + ', ' for x in ex)})"
            kparts = []
            for i in table.tern_pos:
                s = table.tern_shift[i]
                kparts.append(f"({key_src[i]} << {s})" if s else key_src[i])
            kexpr = " | ".join(kparts) if kparts else "0"
            rexpr = f"({''.join(key_src[i] + ', ' for i in table.range_pos)})"
            body.append(f"e = {tc}.lookup_ternary({exs}, {kexpr}, {rexpr})")
        miss_next = table.next_miss if table.uses_hit_miss else "e.next"
        hit_next = table.next_hit if table.uses_hit_miss else "e.next"
        body += ["if e is None:",
                 f"    e = {tc}.default",
                 "    e.fn(P, F, V, e.data)",
                 f"    return {miss_next}"]
        if table.with_counters:
            body += ["c = e.counter", "c[0] += 1", "c[1] += P.ilen"]
        if meter is not None and meter.name in self._meter_targets:
            tf = self._meter_targets[meter.name]
            body += [self._assign_src(f"F[{tf.slot}]", tf.width, tf.signed, "e.meter.execute(P.ilen)")]
        elif meter is not None:
            body += ["e.meter.execute(P.ilen)"]
        body += ["e.fn(P, F, V, e.data)", f"return {hit_next}"]
        self.g.emit([f"def {fn}(P, F, V):"] + _ind(body))
