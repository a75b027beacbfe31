"""P4Runtime conformance of the softswitch: arbitration, pipeline config,
reads and writes of every entity p4tap uses, and the exact gRPC status codes
and per-update ``p4.v1.Error`` codes bmv2 (PI) returns for bad requests.

Each case runs against the softswitch and is checked against the codes PI's
source returns; where ``simple_switch_grpc`` is installed the same requests
also run against bmv2 and both targets' answers must be identical.  No packet
leaves the host: the switches run without interfaces, gRPC on 127.0.0.1.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import code_pb2, status_pb2
from p4protos import p4info_pb2
from p4protos import p4runtime_pb2 as p4r
from p4protos import p4runtime_pb2_grpc

from bmv2_topo.bmv2_switch import Bmv2Switch, target_skip_reason

FIXTURES = Path(__file__).parent / "fixtures" / "softswitch"
OK, UNKNOWN = code_pb2.OK, code_pb2.UNKNOWN
INVALID, NOT_FOUND, EXISTS = code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND, code_pb2.ALREADY_EXISTS
DENIED, UNIMPL, RANGE, PRECOND = code_pb2.PERMISSION_DENIED, code_pb2.UNIMPLEMENTED, code_pb2.OUT_OF_RANGE, \
    code_pb2.FAILED_PRECONDITION
INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE


def load_fixture(name: str) -> tuple[p4info_pb2.P4Info, bytes]:
    p4info = text_format.Parse((FIXTURES / f"{name}.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    return p4info, (FIXTURES / f"{name}.json").read_bytes()


class Ids:
    """Names to ids of a P4Info (by last name component)."""

    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info

    @staticmethod
    def _find(objs, name):
        for o in objs:
            if o.preamble.name == name or o.preamble.name.endswith("." + name):
                return o
        raise KeyError(name)

    def table(self, name):
        return self._find(self.p4info.tables, name)

    def action(self, name):
        return self._find(self.p4info.actions, name).preamble.id

    def counter(self, name):
        return self._find(self.p4info.counters, name).preamble.id

    def meter(self, name):
        return self._find(self.p4info.meters, name).preamble.id

    def register(self, name):
        return self._find(self.p4info.registers, name).preamble.id


class Client:
    """A raw P4Runtime client that keeps every status code (no wrapping)."""

    _elections = iter(range(100, 1 << 30))

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 28)])
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        # streams of earlier tests may still be closing: every client gets its own election id
        self.election = (0, next(Client._elections))

    def close(self) -> None:
        self.channel.close()

    def stream(self, election: tuple[int, int], device_id: int = 0) -> Stream:
        return Stream(self.stub, election, device_id)

    def write(self, updates, election="mine", atomicity=p4r.WriteRequest.CONTINUE_ON_ERROR, device_id=0):
        req = p4r.WriteRequest(device_id=device_id, atomicity=atomicity, updates=updates)
        if election == "mine":
            election = self.election
        if election is not None:
            req.election_id.high, req.election_id.low = election
        try:
            self.stub.Write(req, timeout=20)
            return (OK, [])
        except grpc.RpcError as e:
            return (e.code().value[0], _per_update(e))

    def read(self, entities, device_id=0):
        out = []
        try:
            for resp in self.stub.Read(p4r.ReadRequest(device_id=device_id, entities=entities), timeout=20):
                out.extend(resp.entities)
            return OK, out
        except grpc.RpcError as e:
            return e.code().value[0], out

    def set_pipeline(self, p4info, config, election="mine",
                     action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT, cookie=None, device_id=0):
        req = p4r.SetForwardingPipelineConfigRequest(device_id=device_id, action=action)
        if election == "mine":
            election = self.election
        if election is not None:
            req.election_id.high, req.election_id.low = election
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = config
        if cookie is not None:
            req.config.cookie.cookie = cookie
        try:
            self.stub.SetForwardingPipelineConfig(req, timeout=60)
            return OK
        except grpc.RpcError as e:
            return e.code().value[0]


def _per_update(e: grpc.RpcError) -> list[int]:
    for k, v in e.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(v)
            codes = []
            for d in st.details:
                err = p4r.Error()
                d.Unpack(err)
                codes.append(err.canonical_code)
            return codes
    return []


class Stream:
    def __init__(self, stub, election, device_id=0) -> None:
        self.q: queue.Queue = queue.Queue()
        self.out: queue.Queue = queue.Queue()
        self.error: grpc.RpcError | None = None
        req = p4r.StreamMessageRequest()
        req.arbitration.device_id = device_id
        req.arbitration.election_id.high, req.arbitration.election_id.low = election
        self.q.put(req)
        self.call = stub.StreamChannel(iter(self.q.get, None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for msg in self.call:
                self.out.put(msg)
        except grpc.RpcError as e:
            self.error = e
        self.out.put(None)

    def next(self, timeout: float = 5.0):
        return self.out.get(timeout=timeout)

    def arbitration(self, timeout: float = 5.0):
        while True:
            m = self.next(timeout)
            if m is None or m.HasField("arbitration"):
                return m

    def send(self, req: p4r.StreamMessageRequest) -> None:
        self.q.put(req)

    def close(self) -> None:
        self.q.put(None)
        self.call.cancel()
        self.thread.join(5)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=["softswitch", "bmv2"])
def target(request, tmp_path_factory):
    reason = target_skip_reason(request.param)
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    if not (FIXTURES / "ss_actions.json").exists():
        pytest.skip("compiled fixtures missing (tests/fixtures/softswitch/*.json)")
    sw = Bmv2Switch(target=request.param, workdir=tmp_path_factory.mktemp(request.param), name=request.param,
                    log_level="warn")
    sw.start(timeout=30)
    yield sw
    sw.stop()


@pytest.fixture
def client(target):
    c = Client(target.grpc_address)
    yield c
    c.close()


@pytest.fixture
def piped(client):
    """A primary stream and the ss_actions pipeline, freshly pushed (empty state)."""
    p4info, cfg = load_fixture("ss_actions")
    s = client.stream(client.election)
    m = s.arbitration()
    assert m.arbitration.status.code == OK
    assert client.set_pipeline(p4info, cfg, cookie=0xC0FFEE) == OK
    yield client, Ids(p4info)
    s.close()


# ----------------------------------------------------------------------------- builders


def ent(**kw) -> p4r.Entity:
    return p4r.Entity(**kw)


def upd(kind, **kw) -> p4r.Update:
    return p4r.Update(type=kind, entity=p4r.Entity(**kw))


def te(ids: Ids, table: str, matches=(), action=None, params=(), priority=0, default=False) -> p4r.TableEntry:
    t = ids.table(table)
    e = p4r.TableEntry(table_id=t.preamble.id, priority=priority, is_default_action=default)
    for fname, kind, *vals in matches:
        mf = next(m for m in t.match_fields if m.name.endswith(fname))
        m = e.match.add(field_id=mf.id)
        if kind == "exact":
            m.exact.value = vals[0]
        elif kind == "lpm":
            m.lpm.value, m.lpm.prefix_len = vals
        elif kind == "ternary":
            m.ternary.value, m.ternary.mask = vals
        elif kind == "range":
            m.range.low, m.range.high = vals
        elif kind == "optional":
            m.optional.value = vals[0]
    if action is not None:
        e.action.action.action_id = ids.action(action) if isinstance(action, str) else action
        for i, v in enumerate(params, start=1):
            e.action.action.params.add(param_id=i, value=v)
    return e


MAC = b"\x02\x00\x00\x00\x00\x01"


def exact_entry(ids, dst=MAC, sel=b"\x01", v=b"\x05"):
    return te(ids, "t_exact", [("dst", "exact", dst), ("sel", "exact", sel)], "set_tbl", [v])


def tern_entry(ids, a=(b"\x10", b"\xf0"), rng=(b"\x00\x10", b"\x00\x20"), b=b"\x01", prio=10, v=b"\x07"):
    return te(ids, "t_tern", [("a", "ternary", *a), ("c", "range", *rng), ("b", "exact", b)], "set_rng", [v],
              priority=prio)


# ----------------------------------------------------------------------------- cases
# name -> (function(client, ids) -> result, expected result on bmv2 / PI)


def _write_case(builder):
    def run(c: Client, ids: Ids):
        ups = builder(ids)
        return c.write(ups)
    return run


CASES = {
    "insert_ok": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i))]), (OK, [])),
    "duplicate_insert": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i)),
                                                upd(INSERT, table_entry=exact_entry(i))]), (UNKNOWN, [OK, EXISTS])),
    "delete_missing": (_write_case(lambda i: [upd(DELETE, table_entry=exact_entry(i))]), (UNKNOWN, [NOT_FOUND])),
    "modify_missing": (_write_case(lambda i: [upd(MODIFY, table_entry=exact_entry(i))]), (UNKNOWN, [NOT_FOUND])),
    "bad_table_id": (_write_case(lambda i: [upd(INSERT, table_entry=p4r.TableEntry(table_id=0x02FFFFFF))]),
                     (UNKNOWN, [INVALID])),
    "value_too_wide": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i, dst=b"\x01" + MAC))]),
                       (UNKNOWN, [INVALID])),
    "short_value_padded": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i, dst=b"\x01"))]), (OK, [])),
    "missing_exact_field": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "exact", MAC)], "set_tbl", [b"\x01"]))]), (UNKNOWN, [INVALID])),
    "unknown_field": (_write_case(lambda i: [upd(INSERT, table_entry=_with_extra_field(exact_entry(i)))]),
                      (UNKNOWN, [INVALID])),
    "wrong_match_kind": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "lpm", MAC, 48), ("sel", "exact", b"\x01")], "set_tbl", [b"\x01"]))]),
                         (UNKNOWN, [INVALID])),
    "lpm_ok": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_lpm", [("d", "lpm", b"\x0a\x00\x00\x00", 8)], "set_lpm", [b"\x01"]))]), (OK, [])),
    "lpm_trailing_bits": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_lpm", [("d", "lpm", b"\x0a\x00\x00\x01", 8)], "set_lpm", [b"\x01"]))]), (UNKNOWN, [INVALID])),
    "lpm_zero_prefix": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_lpm", [("d", "lpm", b"\x00", 0)], "set_lpm", [b"\x01"]))]), (UNKNOWN, [INVALID])),
    "lpm_prefix_too_long": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_lpm", [("d", "lpm", b"\x0a\x00\x00\x00", 33)], "set_lpm", [b"\x01"]))]), (UNKNOWN, [INVALID])),
    "ternary_ok": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i))]), (OK, [])),
    "ternary_zero_priority": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i, prio=0))]),
                              (UNKNOWN, [INVALID])),
    "exact_with_priority": (_write_case(lambda i: [upd(INSERT, table_entry=_with_priority(exact_entry(i), 5))]),
                            (UNKNOWN, [INVALID])),
    "ternary_value_outside_mask": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(
        i, a=(b"\x11", b"\xf0")))]), (UNKNOWN, [INVALID])),
    "ternary_zero_mask": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i, a=(b"\x00", b"\x00")))]),
                          (UNKNOWN, [INVALID])),
    "range_low_above_high": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(
        i, rng=(b"\x00\x30", b"\x00\x20")))]), (UNKNOWN, [INVALID])),
    "range_full_is_dont_care": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(
        i, rng=(b"\x00\x00", b"\xff\xff")))]), (UNKNOWN, [INVALID])),
    "same_key_other_priority": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i, prio=10)),
                                                       upd(INSERT, table_entry=tern_entry(i, prio=11)),
                                                       upd(INSERT, table_entry=tern_entry(i, prio=10))]),
                                (UNKNOWN, [OK, OK, EXISTS])),
    "optional_ok": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_opt", [("b", "optional", b"\x01")], "set_opt", [b"\x02"], priority=1))]), (OK, [])),
    "action_not_in_table": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "exact", MAC), ("sel", "exact", b"\x01")], "set_lpm", [b"\x01"]))]),
                            (UNKNOWN, [INVALID])),
    "bad_action_id": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "exact", MAC), ("sel", "exact", b"\x01")], 0x01FFFFFF, []))]),
                      (UNKNOWN, [INVALID])),
    "param_count": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "exact", MAC), ("sel", "exact", b"\x01")], "set_tbl", [b"\x01", b"\x02"]))]),
                    (UNKNOWN, [INVALID])),
    "param_too_wide": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "exact", MAC), ("sel", "exact", b"\x01")], "set_tbl_port",
        [b"\x01", b"\x02\x00"]))]), (UNKNOWN, [INVALID])),
    "no_action": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_exact", [("dst", "exact", MAC), ("sel", "exact", b"\x01")]))]), (UNKNOWN, [INVALID])),
    "insert_default": (_write_case(lambda i: [upd(INSERT, table_entry=te(i, "t_exact", (), "set_tbl", [b"\x01"],
                                                                         default=True))]), (UNKNOWN, [INVALID])),
    "delete_default": (_write_case(lambda i: [upd(DELETE, table_entry=te(i, "t_exact", (), default=True))]),
                       (UNKNOWN, [INVALID])),
    "modify_default": (_write_case(lambda i: [upd(MODIFY, table_entry=te(i, "t_exact", (), "set_tbl", [b"\x09"],
                                                                         default=True))]), (OK, [])),
    "modify_const_default": (_write_case(lambda i: [upd(MODIFY, table_entry=te(i, "t_opt", (), "NoAction", [],
                                                                               default=True))]),
                             (UNKNOWN, [DENIED])),
    "default_only_in_entry": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_lpm", [("d", "lpm", b"\x0a\x00\x00\x00", 8)], "NoAction", []))]), (UNKNOWN, [DENIED])),
    "table_only_as_default": (_write_case(lambda i: [upd(MODIFY, table_entry=te(i, "t_lpm", (), "set_lpm", [b"\x01"],
                                                                                default=True))]),
                              (UNKNOWN, [DENIED])),
    "insert_into_const_table": (_write_case(lambda i: [upd(INSERT, table_entry=te(
        i, "t_const", [("a", "ternary", b"\x20", b"\xff")], "set_cnst", [b"\x05"], priority=5))]),
                                (UNKNOWN, [UNKNOWN])),
    "counter_insert": (_write_case(lambda i: [upd(INSERT, counter_entry=_counter(i, 1))]), (UNKNOWN, [INVALID])),
    "counter_modify": (_write_case(lambda i: [upd(MODIFY, counter_entry=_counter(i, 1, 5, 500))]), (OK, [])),
    "counter_out_of_range": (_write_case(lambda i: [upd(MODIFY, counter_entry=_counter(i, 8))]),
                             (UNKNOWN, [UNKNOWN])),
    "counter_wildcard_write": (_write_case(lambda i: [upd(MODIFY, counter_entry=p4r.CounterEntry(
        counter_id=i.counter("ctr")))]), (UNKNOWN, [UNIMPL])),
    "counter_negative_index": (_write_case(lambda i: [upd(MODIFY, counter_entry=_counter(i, -1))]),
                               (UNKNOWN, [INVALID])),
    "meter_negative": (_write_case(lambda i: [upd(MODIFY, meter_entry=_meter(i, 0, cir=-5))]),
                       (UNKNOWN, [INVALID])),
    "meter_ok": (_write_case(lambda i: [upd(MODIFY, meter_entry=_meter(i, 0, cir=10, cburst=5, pir=20, pburst=9))]),
                 (OK, [])),
    "meter_insert": (_write_case(lambda i: [upd(INSERT, meter_entry=_meter(i, 0, 1, 1, 2, 2))]),
                     (UNKNOWN, [INVALID])),
    "meter_committed_above_peak": (_write_case(lambda i: [upd(MODIFY, meter_entry=_meter(i, 1, cir=50, cburst=5,
                                                                                        pir=20, pburst=9))]),
                                   (UNKNOWN, [UNKNOWN])),
    "meter_out_of_range": (_write_case(lambda i: [upd(MODIFY, meter_entry=_meter(i, 4, cir=10, cburst=5, pir=20,
                                                                                 pburst=9))]), (UNKNOWN, [UNKNOWN])),
    "meter_delete": (_write_case(lambda i: [upd(DELETE, meter_entry=_meter(i, 0, 1, 1, 2, 2))]), (UNKNOWN, [INVALID])),
    "meter_wildcard_write": (_write_case(lambda i: [upd(MODIFY, meter_entry=p4r.MeterEntry(
        meter_id=i.meter("mtr"), config=p4r.MeterConfig(cir=1, cburst=1, pir=2, pburst=2)))]), (UNKNOWN, [UNIMPL])),
    "meter_reset": (_write_case(lambda i: [upd(MODIFY, meter_entry=_meter(i, 0, cir=-1, cburst=-1, pir=-1,
                                                                          pburst=-1))]), (OK, [])),
    "meter_bad_id": (_write_case(lambda i: [upd(MODIFY, meter_entry=p4r.MeterEntry(meter_id=0x14FFFFFF))]),
                     (UNKNOWN, [INVALID])),
    "read_meter_out_of_range": (lambda c, i: (c.read([ent(meter_entry=_meter(i, 9))])[0], []), (UNKNOWN, [])),
    "entry_with_meter_config": (_write_case(lambda i: [upd(INSERT, table_entry=_with_meter(
        tern_entry(i), 100, 10, 200, 20))]), (OK, [])),
    "entry_meter_config_without_meter": (_write_case(lambda i: [upd(INSERT, table_entry=_with_meter(
        exact_entry(i), 100, 10, 200, 20))]), (UNKNOWN, [INVALID])),
    "entry_meter_committed_above_peak": (_write_case(lambda i: [upd(INSERT, table_entry=_with_meter(
        tern_entry(i), 300, 10, 200, 20))]), (UNKNOWN, [UNKNOWN])),
    "direct_meter_modify": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i)),
                                                   upd(MODIFY, direct_meter_entry=p4r.DirectMeterEntry(
                                                       table_entry=tern_entry(i),
                                                       config=p4r.MeterConfig(cir=1, cburst=2, pir=3, pburst=4)))]),
                            (OK, [])),
    "direct_meter_missing_entry": (_write_case(lambda i: [upd(MODIFY, direct_meter_entry=p4r.DirectMeterEntry(
        table_entry=tern_entry(i), config=p4r.MeterConfig(cir=1, cburst=2, pir=3, pburst=4)))]),
                                   (UNKNOWN, [INVALID])),
    "direct_meter_default_entry": (_write_case(lambda i: [upd(MODIFY, direct_meter_entry=p4r.DirectMeterEntry(
        table_entry=te(i, "t_tern", (), default=True), config=p4r.MeterConfig(cir=1, cburst=2, pir=3, pburst=4)))]),
                                   (UNKNOWN, [UNKNOWN])),
    "direct_meter_table_without": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i)),
                                                          upd(MODIFY, direct_meter_entry=p4r.DirectMeterEntry(
                                                              table_entry=exact_entry(i)))]),
                                   (UNKNOWN, [OK, INVALID])),
    "direct_meter_insert": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i)),
                                                   upd(INSERT, direct_meter_entry=p4r.DirectMeterEntry(
                                                       table_entry=tern_entry(i)))]), (UNKNOWN, [OK, INVALID])),
    "read_direct_meter_all_tables": (lambda c, i: (c.read([ent(direct_meter_entry=p4r.DirectMeterEntry(
        table_entry=p4r.TableEntry()))])[0], []), (UNIMPL, [])),
    "direct_counter_missing_entry": (_write_case(lambda i: [upd(MODIFY, direct_counter_entry=p4r.DirectCounterEntry(
        table_entry=tern_entry(i)))]), (UNKNOWN, [INVALID])),
    "direct_counter_no_counter": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i)),
                                                         upd(MODIFY, direct_counter_entry=p4r.DirectCounterEntry(
                                                             table_entry=exact_entry(i)))]),
                                  (UNKNOWN, [OK, INVALID])),
    "direct_counter_modify": (_write_case(lambda i: [upd(INSERT, table_entry=tern_entry(i)),
                                                     upd(MODIFY, direct_counter_entry=p4r.DirectCounterEntry(
                                                         table_entry=tern_entry(i),
                                                         data=p4r.CounterData(packet_count=3)))]), (OK, [])),
    "counter_data_on_table_without": (_write_case(lambda i: [upd(INSERT, table_entry=_with_counter(exact_entry(i)))]),
                                      (UNKNOWN, [INVALID])),
    "clone_ok": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_clone(5, [(2, 1), (3, 1)]))]),
                 (OK, [])),
    "clone_zero": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_clone(0, [(2, 1)]))]),
                   (UNKNOWN, [INVALID])),
    "clone_too_high": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_clone(40000, [(2, 1)]))]),
                       (UNKNOWN, [INVALID])),
    "clone_duplicate": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_clone(6, [(2, 1)])),
                                               upd(INSERT, packet_replication_engine_entry=_clone(6, [(3, 1)]))]),
                        (UNKNOWN, [OK, EXISTS])),
    "clone_truncation": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_clone(7, [(2, 1)],
                                                                                                   plen=128))]),
                         (UNKNOWN, [UNKNOWN])),
    "clone_cos": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_clone(8, [(2, 1)], cos=1))]),
                  (UNKNOWN, [UNIMPL])),
    "clone_delete_missing": (_write_case(lambda i: [upd(DELETE, packet_replication_engine_entry=_clone(9, []))]),
                             (UNKNOWN, [NOT_FOUND])),
    "mcast_ok": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_group(7, [(1, 1), (2, 1),
                                                                                                (2, 2)]))]), (OK, [])),
    "mcast_zero": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_group(0, [(1, 1)]))]),
                   (UNKNOWN, [INVALID])),
    "mcast_reserved": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_group(40000, [(1, 1)]))]),
                       (UNKNOWN, [RANGE])),
    "mcast_duplicate_replica": (_write_case(lambda i: [upd(INSERT, packet_replication_engine_entry=_group(
        8, [(1, 1), (1, 1)]))]), (UNKNOWN, [INVALID])),
    "mcast_modify_missing": (_write_case(lambda i: [upd(MODIFY, packet_replication_engine_entry=_group(9, [(1, 1)]))]),
                             (UNKNOWN, [NOT_FOUND])),
    "update_type_unset": (_write_case(lambda i: [p4r.Update(entity=p4r.Entity(table_entry=exact_entry(i)))]),
                          (UNKNOWN, [INVALID])),
    "empty_write": (_write_case(lambda i: []), (OK, [])),
    "mixed_batch": (_write_case(lambda i: [upd(INSERT, table_entry=exact_entry(i)),
                                           upd(DELETE, table_entry=exact_entry(i, sel=b"\x02")),
                                           upd(INSERT, table_entry=exact_entry(i, sel=b"\x03")),
                                           upd(INSERT, table_entry=tern_entry(i, prio=0))]),
                    (UNKNOWN, [OK, NOT_FOUND, OK, INVALID])),
    "atomic_write": (lambda c, i: c.write([upd(INSERT, table_entry=exact_entry(i))],
                                          atomicity=p4r.WriteRequest.ROLLBACK_ON_ERROR), (UNIMPL, [])),
    "write_not_primary": (lambda c, i: c.write([upd(INSERT, table_entry=exact_entry(i))], election=(0, 0)),
                          (DENIED, [])),
    "write_no_election": (lambda c, i: c.write([upd(INSERT, table_entry=exact_entry(i))], election=None),
                          (DENIED, [])),
    "read_bad_table": (lambda c, i: (c.read([ent(table_entry=p4r.TableEntry(table_id=0x02FFFFFF))])[0], []),
                       (INVALID, [])),
    "read_missing_key": (lambda c, i: _read_count(c, [ent(table_entry=exact_entry(i))]), (OK, [0])),
    "read_mcast_missing": (lambda c, i: (c.read([ent(packet_replication_engine_entry=_group(77, []))])[0], []),
                           (NOT_FOUND, [])),
    "read_clone_missing": (lambda c, i: (c.read([ent(packet_replication_engine_entry=_clone(77, []))])[0], []),
                           (NOT_FOUND, [])),
    "read_counter_out_of_range": (lambda c, i: (c.read([ent(counter_entry=_counter(i, 99))])[0], []),
                                  (UNKNOWN, [])),
    "read_direct_counter_all_tables": (lambda c, i: (c.read([ent(direct_counter_entry=p4r.DirectCounterEntry(
        table_entry=p4r.TableEntry()))])[0], []), (UNIMPL, [])),
    "read_counter_cells": (lambda c, i: _read_count(c, [ent(counter_entry=p4r.CounterEntry(
        counter_id=i.counter("ctr")))]), (OK, [8])),
    "read_default_entry": (lambda c, i: _read_default(c, i), (OK, [1])),
}


def _read_count(c: Client, entities):
    code, out = c.read(entities)
    return code, [len(out)]


def _read_default(c: Client, ids: Ids):
    code, out = c.read([ent(table_entry=te(ids, "t_exact", (), default=True))])
    return code, [len(out)]


def _with_extra_field(e: p4r.TableEntry) -> p4r.TableEntry:
    e.match.add(field_id=99).exact.value = b"\x01"
    return e


def _with_priority(e: p4r.TableEntry, prio: int) -> p4r.TableEntry:
    e.priority = prio
    return e


def _with_counter(e: p4r.TableEntry) -> p4r.TableEntry:
    e.counter_data.packet_count = 1
    return e


def _with_meter(e: p4r.TableEntry, cir: int, cburst: int, pir: int, pburst: int) -> p4r.TableEntry:
    e.meter_config.cir, e.meter_config.cburst, e.meter_config.pir, e.meter_config.pburst = cir, cburst, pir, pburst
    return e


def _counter(ids: Ids, index: int, packets: int = 0, nbytes: int = 0) -> p4r.CounterEntry:
    c = p4r.CounterEntry(counter_id=ids.counter("ctr"))
    c.index.index = index
    c.data.packet_count, c.data.byte_count = packets, nbytes
    return c


def _meter(ids: Ids, index: int, cir=0, cburst=0, pir=0, pburst=0) -> p4r.MeterEntry:
    m = p4r.MeterEntry(meter_id=ids.meter("mtr"))
    m.index.index = index
    m.config.cir, m.config.cburst, m.config.pir, m.config.pburst = cir, cburst, pir, pburst
    return m


def _clone(sid: int, replicas, plen: int = 0, cos: int = 0) -> p4r.PacketReplicationEngineEntry:
    cs = p4r.CloneSessionEntry(session_id=sid, packet_length_bytes=plen, class_of_service=cos)
    for port, rid in replicas:
        cs.replicas.add(egress_port=port, instance=rid)
    return p4r.PacketReplicationEngineEntry(clone_session_entry=cs)


def _group(gid: int, replicas) -> p4r.PacketReplicationEngineEntry:
    g = p4r.MulticastGroupEntry(multicast_group_id=gid)
    for port, rid in replicas:
        g.replicas.add(egress_port=port, instance=rid)
    return p4r.PacketReplicationEngineEntry(multicast_group_entry=g)


@pytest.mark.parametrize("case", sorted(CASES))
def test_status_codes(piped, target, case):
    """Each bad (and good) request answers with PI's status and per-update codes."""
    client, ids = piped
    fn, expected = CASES[case]
    assert fn(client, ids) == expected, f"{case} on {target.target}"


def _register(ids: Ids, index: int | None, value: bytes | None = None) -> p4r.RegisterEntry:
    r = p4r.RegisterEntry(register_id=ids.register("regs"))
    if index is not None:
        r.index.index = index
    if value is not None:
        r.data.bitstring = value
    return r


def test_registers(piped, target):
    """The softswitch reads and writes registers over P4Runtime (the issue asks
    for it); bmv2's PI answers UNIMPLEMENTED, which is checked so the
    difference stays deliberate and visible."""
    client, ids = piped
    if target.target == "bmv2":
        assert client.write([upd(MODIFY, register_entry=_register(ids, 3, b"\x01"))]) == (UNKNOWN, [UNIMPL])
        assert client.read([ent(register_entry=_register(ids, 3))])[0] == UNIMPL
        return
    assert client.write([upd(MODIFY, register_entry=_register(ids, 3, b"\x01\x02\x03\x04"))]) == (OK, [])
    code, got = client.read([ent(register_entry=_register(ids, 3))])
    assert code == OK and [(e.register_entry.index.index, e.register_entry.data.bitstring) for e in got] == \
        [(3, b"\x01\x02\x03\x04")]
    code, cells = client.read([ent(register_entry=_register(ids, None))])
    assert code == OK and len(cells) == 16
    assert {e.register_entry.index.index: e.register_entry.data.bitstring for e in cells}[0] == b"\x00"
    # bad requests change nothing
    assert client.write([upd(MODIFY, register_entry=_register(ids, 16, b"\x01"))]) == (UNKNOWN, [RANGE])
    assert client.write([upd(INSERT, register_entry=_register(ids, 3, b"\x01"))]) == (UNKNOWN, [INVALID])
    assert client.write([upd(MODIFY, register_entry=_register(ids, 3, b"\x01" * 5))]) == (UNKNOWN, [INVALID])
    assert client.read([ent(register_entry=_register(ids, 16))])[0] == RANGE
    code, got = client.read([ent(register_entry=_register(ids, 3))])
    assert got[0].register_entry.data.bitstring == b"\x01\x02\x03\x04"
    # no index: every cell
    assert client.write([upd(MODIFY, register_entry=_register(ids, None, b"\x07"))]) == (OK, [])
    code, cells = client.read([ent(register_entry=_register(ids, None))])
    assert {e.register_entry.data.bitstring for e in cells} == {b"\x07"}


def test_reads_match_writes_and_round_trip(piped, target):
    client, ids = piped
    ups = [upd(INSERT, table_entry=exact_entry(ids)),
           upd(INSERT, table_entry=te(ids, "t_lpm", [("d", "lpm", b"\x0a\x00\x00\x00", 8)], "set_lpm", [b"\x01"])),
           upd(INSERT, table_entry=tern_entry(ids)),
           upd(INSERT, table_entry=te(ids, "t_opt", [("a", "optional", b"\x05")], "set_opt", [b"\x00"], priority=3)),
           upd(INSERT, packet_replication_engine_entry=_group(3, [(1, 0), (2, 0), (4, 9)])),
           upd(INSERT, packet_replication_engine_entry=_clone(4, [(3, 2)]))]
    assert client.write(ups) == (OK, [])
    code, entries = client.read([ent(table_entry=p4r.TableEntry())])
    assert code == OK
    tables = {e.table_entry.table_id for e in entries}
    assert len([e for e in entries if e.table_entry.table_id == ids.table("t_const").preamble.id]) == 3
    assert ids.table("t_exact").preamble.id in tables
    # a read-back entry deletes cleanly: round trip of the canonical form
    mine = [e for e in entries if e.table_entry.table_id != ids.table("t_const").preamble.id]
    assert client.write([upd(DELETE, table_entry=e.table_entry) for e in mine]) == (OK, [])
    code, groups = client.read([ent(packet_replication_engine_entry=_group(0, []))])
    assert code == OK and [g.packet_replication_engine_entry.multicast_group_entry.multicast_group_id
                           for g in groups] == [3]
    code, sessions = client.read([ent(packet_replication_engine_entry=_clone(0, []))])
    assert code == OK and len(sessions) == 1
    assert sessions[0].packet_replication_engine_entry.clone_session_entry.replicas[0].egress_port == 3


def test_read_results_identical_to_bmv2(tmp_path_factory):
    """With bmv2 present: the same writes read back byte-identical from both."""
    if target_skip_reason("bmv2"):
        pytest.skip("bmv2 not installed: nothing to compare with")
    if not (FIXTURES / "ss_actions.json").exists():
        pytest.skip("compiled fixtures missing")
    p4info, cfg = load_fixture("ss_actions")
    ids = Ids(p4info)
    ups = [upd(INSERT, table_entry=exact_entry(ids)),
           upd(INSERT, table_entry=exact_entry(ids, dst=b"\x01", sel=b"\x00", v=b"\x00")),
           upd(INSERT, table_entry=te(ids, "t_lpm", [("d", "lpm", b"\x0a\x80\x00\x00", 9)], "set_lpm", [b"\x00"])),
           upd(INSERT, table_entry=tern_entry(ids)),
           upd(INSERT, table_entry=tern_entry(ids, a=(b"\x00", b"\x0f"), rng=(b"\x00\x00", b"\x00\x01"), prio=1)),
           upd(INSERT, table_entry=te(ids, "t_opt", [("a", "optional", b"\x05")], "set_opt", [b"\x00"], priority=3)),
           upd(MODIFY, table_entry=te(ids, "t_exact", (), "set_tbl_port", [b"\x03", b"\x01\x01"], default=True)),
           upd(MODIFY, meter_entry=_meter(ids, 2, cir=1000, cburst=100, pir=2000, pburst=200)),
           upd(MODIFY, counter_entry=_counter(ids, 3, 7, 700)),
           upd(INSERT, packet_replication_engine_entry=_clone(12, [(3, 2), (1, 0)])),
           upd(INSERT, packet_replication_engine_entry=_group(2, [(1, 1), (3, 1)]))]
    reads = [ent(table_entry=p4r.TableEntry()), ent(table_entry=p4r.TableEntry(counter_data=p4r.CounterData())),
             ent(table_entry=te(ids, "t_exact", (), default=True)),
             ent(counter_entry=p4r.CounterEntry(counter_id=ids.counter("ctr"))),
             ent(meter_entry=p4r.MeterEntry(meter_id=ids.meter("mtr"))),
             ent(direct_counter_entry=p4r.DirectCounterEntry(table_entry=p4r.TableEntry(
                 table_id=ids.table("t_tern").preamble.id))),
             ent(packet_replication_engine_entry=_clone(0, [])),
             ent(packet_replication_engine_entry=_group(0, []))]
    results = {}
    for t in ("bmv2", "softswitch"):
        sw = Bmv2Switch(target=t, workdir=tmp_path_factory.mktemp(f"rd-{t}"), name=t, log_level="warn")
        sw.start(timeout=30)
        try:
            c = Client(sw.grpc_address)
            s = c.stream(c.election)
            s.arbitration()
            assert c.set_pipeline(p4info, cfg) == OK
            assert c.write(ups) == (OK, [])
            out = []
            for r in reads:
                code, got = c.read([r])
                assert code == OK, (t, r)
                out.append(sorted(_sorted_replicas(x).SerializeToString(deterministic=True) for x in got))
            results[t] = out
            s.close()
            c.close()
        finally:
            sw.stop()
    for i, r in enumerate(reads):
        assert results["softswitch"][i] == results["bmv2"][i], f"read #{i} differs: {r}"


def _sorted_replicas(e: p4r.Entity) -> p4r.Entity:
    """Replicas in a canonical order: their order in a read is not specified
    (bmv2 lists them in the order of a C++ hash map)."""
    if e.HasField("packet_replication_engine_entry"):
        e = p4r.Entity().__class__.FromString(e.SerializeToString())
        pre = e.packet_replication_engine_entry
        grp = pre.clone_session_entry if pre.HasField("clone_session_entry") else pre.multicast_group_entry
        reps = sorted(grp.replicas, key=lambda r: r.SerializeToString(deterministic=True))
        del grp.replicas[:]
        grp.replicas.extend(reps)
    return e


# ----------------------------------------------------------------------------- arbitration / pipeline


@pytest.mark.parametrize("which", ["softswitch", "bmv2"])
def test_before_pipeline(which, tmp_path):
    reason = target_skip_reason(which)
    if reason:
        pytest.skip(f"{which}: {reason}")
    sw = Bmv2Switch(target=which, workdir=tmp_path, name=which, log_level="warn")
    sw.start(timeout=30)
    client = Client(sw.grpc_address)
    s = client.stream(client.election)
    try:
        assert s.arbitration().arbitration.status.code == OK
        code, _ = client.read([ent(table_entry=p4r.TableEntry())])
        assert code == PRECOND
        assert client.write([upd(INSERT, table_entry=p4r.TableEntry(table_id=1))])[0] == PRECOND
        try:
            client.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(device_id=0), timeout=5)
            pytest.fail("GetForwardingPipelineConfig before a pipeline succeeded")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        s.close()
        client.close()
        sw.stop()


def test_arbitration(client, target):
    p4info, cfg = load_fixture("ss_actions")
    base = client.election[1] * 100
    a = client.stream((0, base + 10))
    try:
        m = a.arbitration()
        assert m.arbitration.status.code == OK and m.arbitration.election_id.low == base + 10
        b = client.stream((0, base + 5))
        mb = b.arbitration()
        assert mb.arbitration.status.code == EXISTS and mb.arbitration.election_id.low == base + 10
        assert client.set_pipeline(p4info, cfg, election=(0, base + 5)) == DENIED
        assert client.set_pipeline(p4info, cfg, election=(0, base + 10)) == OK
        # the same election id twice ends the second stream
        twin = client.stream((0, base + 10))
        assert twin.next() is None and twin.error is not None
        assert twin.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        # b takes over: everyone is told
        b.send(_arb((0, base + 20)))
        assert b.arbitration().arbitration.status.code == OK
        ma = a.arbitration()
        assert ma.arbitration.status.code == EXISTS and ma.arbitration.election_id.low == base + 20
        b.close()
        # when the primary leaves, the next one is primary again
        assert a.arbitration().arbitration.status.code == OK
        cookie = client.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(
            device_id=0, response_type=p4r.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE), timeout=10)
        assert {t.preamble.id for t in cookie.config.p4info.tables} == {t.preamble.id for t in p4info.tables}
        caps = client.stub.Capabilities(p4r.CapabilitiesRequest(), timeout=5)
        assert caps.p4runtime_api_version == "1.3.0"
    finally:
        a.close()


def _arb(election) -> p4r.StreamMessageRequest:
    r = p4r.StreamMessageRequest()
    r.arbitration.device_id = 0
    r.arbitration.election_id.high, r.arbitration.election_id.low = election
    return r


def test_pipeline_actions(client, target):
    p4info, cfg = load_fixture("ss_actions")
    A = p4r.SetForwardingPipelineConfigRequest
    s = client.stream(client.election)
    try:
        s.arbitration()
        assert client.set_pipeline(p4info, cfg, action=A.UNSPECIFIED) == INVALID
        assert client.set_pipeline(p4info, cfg, action=A.VERIFY) == OK
        assert client.set_pipeline(p4info, cfg, cookie=7) == OK
        got = client.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(
            device_id=0, response_type=p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY), timeout=10)
        assert got.config.cookie.cookie == 7 and not got.config.p4_device_config
        full = client.stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(device_id=0), timeout=10)
        assert full.config.p4_device_config == cfg
        # a new pipeline wipes the state
        assert client.write([upd(INSERT, table_entry=exact_entry(Ids(p4info)))]) == (OK, [])
        assert client.set_pipeline(p4info, cfg) == OK
        code, entries = client.read([ent(table_entry=te(Ids(p4info), "t_exact"))])
        assert code == OK and entries == []
    finally:
        s.close()


def test_softswitch_refuses_unsupported_program(tmp_path):
    """A JSON using something the softswitch does not implement fails the
    pipeline push with UNKNOWN and a message naming it."""
    import json
    if target_skip_reason("softswitch"):
        pytest.skip("softswitch unavailable")
    p4info, cfg = load_fixture("ss_actions")
    j = json.loads(cfg)
    j["actions"][0]["primitives"].append({"op": "frobnicate", "parameters": []})
    sw = Bmv2Switch(target="softswitch", workdir=tmp_path, name="ss")
    sw.start(timeout=30)
    try:
        c = Client(sw.grpc_address)
        s = c.stream(c.election)
        s.arbitration()
        req = p4r.SetForwardingPipelineConfigRequest(device_id=0, action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.election_id.low = c.election[1]
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = json.dumps(j).encode()
        with pytest.raises(grpc.RpcError) as ei:
            c.stub.SetForwardingPipelineConfig(req, timeout=30)
        assert ei.value.code() == grpc.StatusCode.UNKNOWN
        assert "frobnicate" in ei.value.details()
        s.close()
        c.close()
    finally:
        sw.stop()

