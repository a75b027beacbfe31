"""SwitchConnection and Bmv2Switch against each switch target: bmv2's
``simple_switch_grpc`` and p4tap's softswitch (same command line, same
P4Runtime answers), every switch test once per target.

The tests compile their own tiny v1model program (one exact table with a
direct counter, one indirect counter) so they do not depend on the p4tap
program being buildable.  Tests that need bmv2 or p4c skip with the reason
when the tool is absent; the veth test also needs root.  No traffic leaves
loopback and the veth pairs created here (named ``p4tt*``, removed after).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import any_pb2, text_format
from google.rpc import code_pb2, status_pb2
from p4protos import p4info_pb2
from p4protos import p4runtime_pb2

from bmv2_topo.bmv2_switch import (
    Bmv2Error,
    Bmv2Switch,
    free_tcp_port,
)
from controller.switch import (
    NotPrimaryError,
    StreamState,
    SwitchConnection,
    SwitchError,
    SwitchUnavailableError,
    TlsConfig,
    WriteError,
    decode_write_errors,
    is_loopback_address,
)

P4C = "p4c-bm2-ss"
P4C_SKIP_REASON = "p4c-bm2-ss not on PATH: build p4c with the bmv2 backend (see README, 'Toolchain')"

needs_p4c = pytest.mark.skipif(shutil.which(P4C) is None, reason=P4C_SKIP_REASON)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to create veth pairs",
)

TINY_P4 = r"""
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etype; }
struct headers_t { ethernet_t eth; }
struct meta_t { }

parser TParser(packet_in pkt, out headers_t hdr, inout meta_t meta,
               inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.eth); transition accept; }
}
control TVerify(inout headers_t hdr, inout meta_t meta) { apply { } }
control TIngress(inout headers_t hdr, inout meta_t meta,
                 inout standard_metadata_t sm) {
    direct_counter(CounterType.packets_and_bytes) fwd_counter;
    counter(8, CounterType.packets) port_counter;
    action set_port(bit<9> port) { sm.egress_spec = port; }
    action drop() { mark_to_drop(sm); }
    table fwd {
        key = { sm.ingress_port : exact; }
        actions = { set_port; drop; }
        default_action = drop();
        counters = fwd_counter;
        size = 64;
    }
    apply {
        port_counter.count((bit<32>) sm.ingress_port);
        fwd.apply();
    }
}
control TEgress(inout headers_t hdr, inout meta_t meta,
                inout standard_metadata_t sm) { apply { } }
control TCompute(inout headers_t hdr, inout meta_t meta) { apply { } }
control TDeparser(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr.eth); } }
V1Switch(TParser(), TVerify(), TIngress(), TEgress(), TCompute(), TDeparser()) main;
"""


@dataclass
class Tiny:
    p4info: p4info_pb2.P4Info
    device_config: bytes
    table_id: int
    key_id: int
    set_port_id: int
    drop_id: int
    port_counter_id: int


def _by_suffix(items, suffix: str):
    for it in items:
        if it.preamble.name == suffix or it.preamble.name.endswith("." + suffix):
            return it
    raise KeyError(suffix)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Tiny:
    """Compile TINY_P4 once per module with p4c-bm2-ss."""
    if shutil.which(P4C) is None:
        pytest.skip(P4C_SKIP_REASON)
    d = tmp_path_factory.mktemp("tiny_p4")
    src = d / "tiny.p4"
    src.write_text(TINY_P4)
    p4info_path = d / "tiny.p4info.txtpb"
    json_path = d / "tiny.json"
    proc = subprocess.run(
        [P4C, "--arch", "v1model", "--p4runtime-files", str(p4info_path), "-o", str(json_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"p4c-bm2-ss failed:\n{proc.stdout}\n{proc.stderr}"
    p4info = text_format.Parse(p4info_path.read_text(), p4info_pb2.P4Info())
    table = _by_suffix(p4info.tables, "fwd")
    return Tiny(
        p4info=p4info,
        device_config=json_path.read_bytes(),
        table_id=table.preamble.id,
        key_id=table.match_fields[0].id,
        set_port_id=_by_suffix(p4info.actions, "set_port").preamble.id,
        drop_id=_by_suffix(p4info.actions, "drop").preamble.id,
        port_counter_id=_by_suffix(p4info.counters, "port_counter").preamble.id,
    )



@pytest.fixture
def bmv2(tmp_path, target):
    """A running switch of ``target`` (the name stays: most tests were written for bmv2)."""
    sw = Bmv2Switch(workdir=tmp_path / target, name="s1", target=target)
    sw.start(timeout=30)
    yield sw
    sw.stop()


@pytest.fixture
def conn(bmv2):
    c = SwitchConnection(bmv2.grpc_address, device_id=0, election_id=(0, 10), name="s1")
    c.connect(timeout=10)
    yield c
    c.close()


@pytest.fixture
def piped(conn, tiny):
    conn.set_pipeline(tiny.p4info, tiny.device_config, cookie=0xC0FFEE)
    return conn


def fwd_entry(t: Tiny, in_port: int, out_port: int) -> p4runtime_pb2.TableEntry:
    te = p4runtime_pb2.TableEntry(table_id=t.table_id)
    m = te.match.add()
    m.field_id = t.key_id
    m.exact.value = in_port.to_bytes(2, "big")
    te.action.action.action_id = t.set_port_id
    p = te.action.action.params.add()
    p.param_id = 1
    p.value = out_port.to_bytes(2, "big")
    return te


def update(kind, **entity) -> p4runtime_pb2.Update:
    return p4runtime_pb2.Update(type=kind, entity=p4runtime_pb2.Entity(**entity))


INSERT, MODIFY, DELETE = p4runtime_pb2.Update.INSERT, p4runtime_pb2.Update.MODIFY, p4runtime_pb2.Update.DELETE


def as_int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def wait_until(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


# ---------------------------------------------------------------- no switch needed


def test_plaintext_to_non_loopback_is_refused():
    # 192.0.2.0/24 is TEST-NET-1; nothing is sent: the refusal happens before any socket.
    with pytest.raises(SwitchError, match="TLS"):
        SwitchConnection("192.0.2.1:9559")
    with pytest.raises(SwitchError, match="TLS"):
        SwitchConnection("switch1.example:9559")
    SwitchConnection("192.0.2.1:9559", allow_plaintext=True)  # explicit lab override: allowed, not connected
    SwitchConnection("127.0.0.2:9559")
    SwitchConnection("[::1]:9559")
    SwitchConnection("localhost:9559")


def test_is_loopback_address():
    assert is_loopback_address("127.0.0.1:9559")
    assert is_loopback_address("127.10.0.3:1")
    assert is_loopback_address("[::1]:9559")
    assert is_loopback_address("localhost:50001")
    assert is_loopback_address("unix:/tmp/p4rt.sock")
    assert is_loopback_address("ipv4:127.0.0.1:9559")
    assert not is_loopback_address("10.0.0.1:9559")
    assert not is_loopback_address("[2001:db8::1]:9559")
    assert not is_loopback_address("sw.example.net:9559")


def test_tls_config_needs_key_and_cert_together(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(SwitchError, match="together"):
        TlsConfig(ca_cert=ca, client_cert=ca).credentials()
    with pytest.raises(SwitchError, match="cannot read"):
        TlsConfig(ca_cert=tmp_path / "missing.pem").credentials()


def test_connect_to_dead_port_is_unavailable_quickly():
    port = free_tcp_port()  # nothing listens there
    c = SwitchConnection(f"127.0.0.1:{port}", device_id=3)
    t0 = time.monotonic()
    with pytest.raises(SwitchUnavailableError) as ei:
        c.connect(timeout=1.0)
    assert time.monotonic() - t0 < 3.0
    assert f"127.0.0.1:{port}" in str(ei.value) and "device 3" in str(ei.value)
    assert not c.connected
    c.close()


def test_not_connected_operations_raise_switch_error():
    c = SwitchConnection("127.0.0.1:1")
    with pytest.raises(SwitchError, match="not connected"):
        c.write([p4runtime_pb2.Update()])
    with pytest.raises(SwitchError, match="not connected"):
        c.read_table_entries()


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailers=()):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


def test_decode_write_errors_lists_only_failures():
    st = status_pb2.Status(code=code_pb2.UNKNOWN)
    for code, msg in [(code_pb2.OK, ""), (code_pb2.ALREADY_EXISTS, "dup"), (code_pb2.OK, ""), (code_pb2.INVALID_ARGUMENT, "bad")]:
        a = any_pb2.Any()
        a.Pack(p4runtime_pb2.Error(canonical_code=code, message=msg))
        st.details.append(a)
    e = _FakeRpcError(grpc.StatusCode.UNKNOWN, "", (("grpc-status-details-bin", st.SerializeToString()),))
    assert decode_write_errors(e) == [(1, code_pb2.ALREADY_EXISTS, "dup"), (3, code_pb2.INVALID_ARGUMENT, "bad")]
    assert decode_write_errors(_FakeRpcError(grpc.StatusCode.UNKNOWN, "x")) is None


# ---------------------------------------------------------------- real bmv2


@pytest.mark.bmv2
def test_connect_primary_and_capabilities(bmv2, conn):
    assert conn.connected and conn.is_primary
    assert conn.state is StreamState.PRIMARY
    assert conn.primary_election_id == (0, 10)
    assert conn.capabilities().startswith("1.")
    assert bmv2.alive and bmv2.log_path is not None


@pytest.mark.bmv2
def test_read_and_write_before_pipeline_fail_clearly(conn):
    with pytest.raises(SwitchError) as ei:
        conn.read_table_entries()
    assert "pipeline" in str(ei.value).lower()
    with pytest.raises(WriteError) as ei:
        conn.write([update(INSERT, table_entry=p4runtime_pb2.TableEntry(table_id=1))])
    assert ei.value.grpc_code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_set_and_get_pipeline(piped, tiny):
    cookie_only = p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY
    assert piped.get_pipeline(cookie_only).cookie.cookie == 0xC0FFEE
    cfg = piped.get_pipeline(p4runtime_pb2.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
    assert {t.preamble.id for t in cfg.p4info.tables} == {t.preamble.id for t in tiny.p4info.tables}


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_write_and_read_back_table_entry(piped, tiny):
    piped.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])
    entries = piped.read_table_entries(tiny.table_id)
    assert len(entries) == 1
    e = entries[0]
    assert as_int(e.match[0].exact.value) == 1
    assert e.action.action.action_id == tiny.set_port_id
    assert as_int(e.action.action.params[0].value) == 2
    # table_id 0 reads every table
    assert len(piped.read_table_entries()) == 1
    # direct counters come back when asked for
    with_ctr = piped.read_table_entries(tiny.table_id, with_counters=True)
    assert with_ctr[0].HasField("counter_data") and with_ctr[0].counter_data.packet_count == 0
    assert not piped.read_table_entries(tiny.table_id)[0].HasField("counter_data")

    piped.write([update(MODIFY, table_entry=fwd_entry(tiny, 1, 3))])
    assert as_int(piped.read_table_entries(tiny.table_id)[0].action.action.params[0].value) == 3
    piped.write([update(DELETE, table_entry=fwd_entry(tiny, 1, 3))])
    assert piped.read_table_entries(tiny.table_id) == []


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_write_error_carries_index_and_code(piped, tiny):
    piped.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])
    bogus = fwd_entry(tiny, 4, 2)
    bogus.table_id = 0x02FFFFFF  # no such table
    batch = [
        update(INSERT, table_entry=fwd_entry(tiny, 2, 1)),  # ok
        update(INSERT, table_entry=bogus),  # unknown table
        update(INSERT, table_entry=fwd_entry(tiny, 3, 1)),  # ok
        update(INSERT, table_entry=fwd_entry(tiny, 1, 5)),  # duplicate key
    ]
    with pytest.raises(WriteError) as ei:
        piped.write(batch)
    err = ei.value
    assert [i for i, _, _ in err.errors] == [1, 3]
    codes = dict((i, c) for i, c, _ in err.errors)
    assert codes[1] in (code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND)
    assert codes[3] == code_pb2.ALREADY_EXISTS
    text = str(err)
    assert "update #3: ALREADY_EXISTS" in text and bmv2_addr(piped) in text
    # CONTINUE_ON_ERROR: the good ones landed
    ports = sorted(as_int(e.match[0].exact.value) for e in piped.read_table_entries(tiny.table_id))
    assert ports == [1, 2, 3]


def bmv2_addr(conn: SwitchConnection) -> str:
    return conn.address


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_write_batched_reports_indices_of_the_whole_list(piped, tiny):
    updates = [update(INSERT, table_entry=fwd_entry(tiny, p, 1)) for p in range(1, 11)]
    updates[7] = update(INSERT, table_entry=fwd_entry(tiny, 2, 1))  # duplicates index 1, in the 3rd batch
    with pytest.raises(WriteError) as ei:
        piped.write_batched(updates, batch_size=3)
    assert [(i, c) for i, c, _ in ei.value.errors] == [(7, code_pb2.ALREADY_EXISTS)]
    assert len(piped.read_table_entries(tiny.table_id)) == 9
    piped.write_batched([update(DELETE, table_entry=e) for e in piped.read_table_entries(tiny.table_id)], batch_size=4)
    assert piped.read_table_entries(tiny.table_id) == []


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_pre_entries_and_indirect_counter(piped, tiny):
    # bmv2 quirk: clone-session truncation (packet_length_bytes != 0) is not
    # implemented by its PI target; the write fails for that update only.
    truncated = p4runtime_pb2.CloneSessionEntry(session_id=6, packet_length_bytes=128)
    truncated.replicas.add(egress_port=2, instance=1)
    with pytest.raises(WriteError) as ei:
        piped.write(
            [update(INSERT, packet_replication_engine_entry=p4runtime_pb2.PacketReplicationEngineEntry(clone_session_entry=truncated))]
        )
    assert [i for i, _, _ in ei.value.errors] == [0]

    clone = p4runtime_pb2.CloneSessionEntry(session_id=5)
    clone.replicas.add(egress_port=2, instance=1)
    group = p4runtime_pb2.MulticastGroupEntry(multicast_group_id=7)
    group.replicas.add(egress_port=1, instance=1)
    group.replicas.add(egress_port=2, instance=1)
    piped.write(
        [
            update(INSERT, packet_replication_engine_entry=p4runtime_pb2.PacketReplicationEngineEntry(clone_session_entry=clone)),
            update(INSERT, packet_replication_engine_entry=p4runtime_pb2.PacketReplicationEngineEntry(multicast_group_entry=group)),
        ]
    )
    sessions = piped.read_clone_sessions()
    assert [s.session_id for s in sessions] == [5]
    r = sessions[0].replicas[0]
    assert (r.egress_port or as_int(r.port)) == 2
    groups = piped.read_multicast_groups()
    assert [g.multicast_group_id for g in groups] == [7] and len(groups[0].replicas) == 2

    cells = piped.read_counter(tiny.port_counter_id)
    assert len(cells) == 8 and all(c.data.packet_count == 0 for c in cells)
    one = piped.read_counter(tiny.port_counter_id, index=3)
    assert len(one) == 1 and one[0].index.index == 3


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_backup_cannot_write_and_primary_moves(bmv2, piped, tiny):
    events: list[StreamState] = []
    piped.on_state_change(lambda c, s: events.append(s))
    backup = SwitchConnection(bmv2.grpc_address, election_id=(0, 5), name="backup")
    backup.connect(timeout=5)
    try:
        assert not backup.is_primary and backup.state is StreamState.BACKUP
        assert backup.primary_election_id == (0, 10)
        assert piped.is_primary
        with pytest.raises(NotPrimaryError) as ei:
            backup.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])
        assert "not primary" in str(ei.value)
        # reads are allowed for backups
        assert backup.read_table_entries(tiny.table_id) == []

        # the backup takes over with a higher id; the old primary is told
        piped.state_changed.clear()
        assert backup.become_primary((0, 20)) is True
        assert piped.state_changed.wait(5)
        assert wait_until(lambda: not piped.is_primary)
        assert events[-1] is StreamState.BACKUP
        backup.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])
        with pytest.raises(NotPrimaryError):
            piped.write([update(DELETE, table_entry=fwd_entry(tiny, 1, 2))])
    finally:
        backup.close()
    # when the higher one leaves, the switch hands the role back
    assert wait_until(lambda: piped.is_primary)
    assert events[-1] is StreamState.PRIMARY


@pytest.mark.bmv2
def test_same_election_id_is_rejected(bmv2, conn):
    twin = SwitchConnection(bmv2.grpc_address, election_id=(0, 10))
    with pytest.raises(SwitchError) as ei:
        twin.connect(timeout=5)
    assert not isinstance(ei.value, SwitchUnavailableError)
    twin.close()
    assert conn.is_primary


@pytest.mark.bmv2
@pytest.mark.p4c
@needs_p4c
def test_switch_crash_is_detected_and_reconnect_works(bmv2, piped, tiny):
    seen = threading.Event()
    piped.on_state_change(lambda c, s: s is StreamState.DISCONNECTED and seen.set())
    bmv2.kill()
    assert not bmv2.alive
    assert seen.wait(5), "stream loss not reported"
    assert not piped.connected and not piped.is_primary
    assert isinstance(piped.stream_error, SwitchUnavailableError)
    with pytest.raises(SwitchUnavailableError):
        piped.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])

    bmv2.restart()
    piped.reconnect(timeout=10)
    assert piped.is_primary
    with pytest.raises(SwitchError):  # a restarted bmv2 comes back without a pipeline
        piped.read_table_entries()
    piped.set_pipeline(tiny.p4info, tiny.device_config)
    piped.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])
    assert len(piped.read_table_entries(tiny.table_id)) == 1


@pytest.mark.bmv2
def test_two_switches_side_by_side(tmp_path, target):
    # Same device id on both: own ports and notification sockets must keep them apart.
    with Bmv2Switch(workdir=tmp_path / "a", name="a", target=target) as a, \
            Bmv2Switch(workdir=tmp_path / "b", name="b", target=target) as b:
        assert a.grpc_address != b.grpc_address
        with SwitchConnection(a.grpc_address) as ca, SwitchConnection(b.grpc_address) as cb:
            assert ca.is_primary and cb.is_primary
    assert not a.alive and not b.alive


@pytest.mark.bmv2
def test_bmv2_missing_interface_fails_clearly(tmp_path, target):
    sw = Bmv2Switch(ports={1: "p4ttnosuchif0"}, workdir=tmp_path, name="bad", target=target)
    try:
        with pytest.raises(Bmv2Error) as ei:
            sw.start(timeout=10)
        assert "p4ttnosuchif0" in str(ei.value) and "do not exist" in str(ei.value)
    finally:
        sw.stop()


# ---------------------------------------------------------------- TLS


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not on PATH")
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=p4tap-test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:p4tap-controller")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d


@pytest.mark.bmv2
def test_mutual_tls(tmp_path, pki, target):
    sw = Bmv2Switch(
        workdir=tmp_path / target,
        name="tls",
        target=target,
        extra_target_args=[
            "--grpc-server-ssl",
            "--grpc-server-cacert", str(pki / "ca.pem"),
            "--grpc-server-cert", str(pki / "server.pem"),
            "--grpc-server-key", str(pki / "server.key"),
            "--grpc-server-with-client-auth",
        ],
    )
    sw.start(timeout=30)
    try:
        tls = TlsConfig(ca_cert=pki / "ca.pem", client_cert=pki / "client.pem", client_key=pki / "client.key")
        with SwitchConnection(sw.grpc_address, tls=tls) as c:
            assert c.is_primary
            assert c.capabilities().startswith("1.")
        # without a client certificate the switch refuses the handshake
        anon = SwitchConnection(sw.grpc_address, tls=TlsConfig(ca_cert=pki / "ca.pem"))
        with pytest.raises(SwitchUnavailableError, match="TLS"):
            anon.connect(timeout=2)
        anon.close()
    finally:
        sw.stop()


# ---------------------------------------------------------------- veth data path


@pytest.fixture
def veth_pairs():
    """Two veth pairs (bmv2_topo.veth, named p4tt<tag><port>{s,h}): [(host end, switch end)]. Removed afterwards."""
    from bmv2_topo.veth import veth_pairs as make_pairs
    with make_pairs([1, 2], prefix="p4tt") as pairs:
        yield [(p.host_end, p.switch_end) for p in pairs]


@pytest.mark.bmv2
@pytest.mark.p4c
@pytest.mark.root
@needs_root
@needs_p4c
def test_forwarding_through_veths(tmp_path, tiny, veth_pairs, target):
    (h1, s1), (h2, s2) = veth_pairs
    sw = Bmv2Switch(ports={1: s1, 2: s2}, workdir=tmp_path / target, name="fwd", target=target)
    sw.start(timeout=30)
    try:
        with SwitchConnection(sw.grpc_address) as c:
            c.set_pipeline(tiny.p4info, tiny.device_config)
            c.write([update(INSERT, table_entry=fwd_entry(tiny, 1, 2))])

            marker = b"p4tap-test-" + uuid.uuid4().hex.encode()
            frame = bytes.fromhex("020000000002" "020000000001" "88b5") + marker + bytes(32)
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            try:
                rx.bind((h2, 0))
                rx.settimeout(0.5)
                tx.bind((h1, 0))
                got = False
                deadline = time.monotonic() + 10
                while not got and time.monotonic() < deadline:
                    tx.send(frame)
                    end = time.monotonic() + 1.0
                    while time.monotonic() < end:
                        try:
                            data = rx.recv(2048)
                        except socket.timeout:
                            continue
                        if marker in data:
                            got = True
                            break
            finally:
                rx.close()
                tx.close()
            assert got, "frame sent into port 1 did not come out of port 2"
            (entry,) = c.read_table_entries(tiny.table_id, with_counters=True)
            assert entry.counter_data.packet_count >= 1
            (cell,) = c.read_counter(tiny.port_counter_id, index=1)
            assert cell.data.packet_count >= 1
    finally:
        sw.stop()
