"""Reaching one switch: which pipeline it runs, whether it can use it, what it holds.

A switch that restarted runs no pipeline (or another's), bmv2 acknowledges
a pipeline it cannot load, and what a switch holds is known only by reading
it. These are the questions the controller asks a switch before trusting it,
kept apart from the switch's plan and journal (controller.managed_switch),
which acts on the answers; each takes the connection and answers from the
switch alone.
"""

from __future__ import annotations

from collections.abc import Collection

from p4protos import p4runtime_pb2 as p4r

from controller.pipeline import Pipeline
from controller.switch import SwitchConnection, SwitchError
from controller.wire import WireEntity, from_entity

__all__ = ["read_owned", "running_cookie", "verify_pipeline"]


def running_cookie(conn: SwitchConnection) -> int | None:
    """The cookie of the pipeline the switch runs; None if none (a restarted
    switch) or it cannot say."""
    try:
        cookie = conn.get_pipeline(response_type=p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        return cookie.cookie.cookie if cookie is not None and cookie.HasField("cookie") else None
    except SwitchError:
        return None


def verify_pipeline(conn: SwitchConnection, pipeline: Pipeline, name: str, address: str, device_id: int) -> None:
    """bmv2 acknowledges a pipeline push even when it cannot load the JSON
    (it only fails later, on every read): prove the pipeline is usable by
    reading one of its tables, and say so clearly when it is not."""
    first_table = pipeline.p4info.tables[0].preamble
    try:
        conn.read_table_entries(first_table.id)
    except SwitchError as error:
        raise SwitchError(f"{name}: the switch accepted the pipeline but cannot use it "
                          f"(reading {first_table.name} fails: {error}); check the switch's log",
                          address=address, device_id=device_id) from error


def read_owned(conn: SwitchConnection, owned_tables: Collection[int]) -> list[WireEntity]:
    """Every entity the switch holds in our tables (default actions aside),
    its clone sessions and multicast groups: what a reconcile compares with."""
    entities = [p4r.Entity(table_entry=te) for te in conn.read_table_entries()
                if not te.is_default_action and te.table_id in owned_tables]
    entities += [p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(clone_session_entry=c))
                 for c in conn.read_clone_sessions()]
    entities += [p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(multicast_group_entry=g))
                 for g in conn.read_multicast_groups()]
    return [from_entity(e) for e in entities]
