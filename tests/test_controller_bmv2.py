"""The controller against real bmv2, with real packets on veth pairs.

Lifetime (expiry within 1 s, nothing delivered after), crash safety (SIGKILL
in the middle of a large batch, then reconcile), a switch restart (expired
intercepts stay gone, live ones come back), and arbitration (a controller
with a lower election id cannot write).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from p4protos import p4runtime_pb2 as p4r

from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.wire import Wire
from controller.pipeline import REPO_ROOT
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.plan import IdAllocator
from controller.reconcile import canonical, diff, key_of
from controller.service import Controller, ProvisionError, SwitchConfig
from controller.switch import NotPrimaryError, SwitchConnection
from ptf_tests.base import MD_A, MD_B, OTHER, PEER, SUBJECT, pcli_copy, tcp4, lab_topology
from tests.conftest import needs_bmv2, needs_root

pytestmark = [needs_bmv2, needs_root]


def switch_config(bmv2: Bmv2Switch, election: int = 1) -> SwitchConfig:
    return SwitchConfig("s1", bmv2.grpc_address, lab_topology(), election_id=(0, election))


def controller(bmv2: Bmv2Switch, tmp_path: Path, election: int = 1) -> Controller:
    return Controller([switch_config(bmv2, election)], tmp_path / "intent.db", tmp_path / "audit.jsonl")


def subject_tap(content_id: int, subject, md, seconds: float) -> tuple[Mediation, list[Stream]]:
    timeout = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    m = Mediation(content_id, ipaddress.ip_address(md.ipv4), 7000, timeout=timeout)
    address = ipaddress.ip_address(subject.ipv4)
    return m, [Stream(content_id, 1, IpFilter(InetAddressType.IPV4, src_address=address, src_length=32), True),
               Stream(content_id, 2, IpFilter(InetAddressType.IPV4, dst_address=address, dst_length=32), True)]


def copies_of(wire: Wire, ifaces: dict[int, str], frm, to, md) -> list[bytes]:
    """Send one packet from `frm` to `to`; return what `md`'s port received."""
    pkt = tcp4(frm, to)
    wire.drain()
    wire.send(ifaces[frm.port], bytes(pkt))
    got = wire.collect(0.5)
    assert bytes(pkt) in got[ifaces[to.port]], "the packet was not forwarded"
    return got[ifaces[md.port]]


def test_expiry_within_one_second_then_nothing_is_delivered(network, tmp_path):
    bmv2, ifaces, wire = network
    expired: list[tuple[int, float]] = []
    with controller(bmv2, tmp_path) as c:
        c.on_expired(lambda m: expired.append((m.content_id, time.time())))
        c.start()
        mediation, streams = subject_tap(11, SUBJECT, MD_A, seconds=2.0)
        c.provision(mediation, streams, actor="test")
        pkt = tcp4(SUBJECT, PEER)
        assert copies_of(wire, ifaces, SUBJECT, PEER, MD_A) == [pcli_copy(pkt, 11, MD_A)]
        deadline = mediation.timeout.timestamp()
        while time.time() < deadline + 3 and not expired:
            time.sleep(0.05)
        assert expired and expired[0][0] == 11
        late = expired[0][1] - deadline
        assert 0 <= late <= 1.0, f"removed {late:.3f} s after the timeout"
        assert copies_of(wire, ifaces, SUBJECT, PEER, MD_A) == []
        assert c.intercepts() == []
        actual = c.switches["s1"].read_actual()
        assert not diff(c.switches["s1"].desired(c.switches["s1"].plan([], datetime.now(timezone.utc))), actual)


def _provision_forever(grpc_address: str, tmp: str, n: int) -> None:
    """Child process: provision n intercepts in one bulk call (killed mid-way)."""
    c = Controller([SwitchConfig("s1", grpc_address, lab_topology(), election_id=(0, 5))], Path(tmp) / "intent.db",
                   Path(tmp) / "audit.jsonl")
    c.start()
    taps = []
    for i in range(n):
        subject = ipaddress.ip_address("198.51.100.0") + (i % 250)
        m = Mediation(1000 + i, ipaddress.ip_address(MD_B.ipv4), 7000 + i % 100,
                      timeout=datetime.now(timezone.utc) + timedelta(hours=1))
        taps.append((m, [Stream(m.content_id, 1, IpFilter(InetAddressType.IPV4, src_address=subject, src_length=32,
                                                          protocol=17, dst_port_min=i, dst_port_max=i), True)]))
    c.provision_many(taps, actor="test")
    os._exit(0)


def test_sigkill_mid_batch_then_restart_reconciles_to_exactly_the_intent(network, tmp_path):
    bmv2, ifaces, wire = network
    n = 3000
    log = open(tmp_path / "child.log", "w")
    child = subprocess.Popen(  # a fresh process: no gRPC state shared with this one
        [sys.executable, "-c", "import sys; from tests.test_controller_bmv2 import _provision_forever; "
         "_provision_forever(sys.argv[1], sys.argv[2], int(sys.argv[3]))", bmv2.grpc_address, str(tmp_path), str(n)],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    # The observer connects once the child's controller has started (its
    # write-ahead record of the batch is out, so its pipeline is in): PI's
    # server can die when a Read arrives while another client's
    # SetForwardingPipelineConfig swaps the pipeline (seen once under load,
    # README, Toolchain), which would test the toolchain, not p4tap.
    audit = tmp_path / "audit.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None and \
            '"provision-intent"' not in (audit.read_text() if audit.exists() else ""):
        time.sleep(0.02)
    with SwitchConnection(bmv2.grpc_address, election_id=(0, 1)) as observer:  # a backup: the child is primary
        deadline = time.time() + 120
        count, last_error = 0, None
        while time.time() < deadline and child.poll() is None:
            time.sleep(0.05)
            try:
                count = len(observer.read_table_entries())
            except Exception as error:  # no pipeline yet
                last_error = error
                continue
            if count > 100:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        partial = len(observer.read_table_entries())
    output = (tmp_path / "child.log").read_text()[-2000:]
    assert 100 < partial, f"the child never got to write ({partial} entries, exit {child.returncode}, {last_error}): {output}"

    with controller(bmv2, tmp_path) as c:
        c.start()  # reconciles
        switch = c.switches["s1"]
        desired = switch.desired(switch.plan(c.intercepts(), datetime.now(timezone.utc)))
        actual = switch.read_actual()
        assert not diff(desired, actual), "switch state differs from the intent after reconcile"
        installed = {m.content_id for m, _, _ in c.intercepts()}
        # Whole intercepts only: every stored intercept has its entries, no stray ones.
        assert len(installed) > 0
        assert len(actual) == len(desired)


def test_switch_restart_brings_back_live_taps_only(network, tmp_path):
    bmv2, ifaces, wire = network
    with controller(bmv2, tmp_path) as c:
        c.start()
        live, live_streams = subject_tap(21, SUBJECT, MD_A, seconds=600)
        short, short_streams = subject_tap(22, OTHER, MD_B, seconds=3)
        c.provision(live, live_streams, actor="test")
        c.provision(short, short_streams, actor="test")
        assert copies_of(wire, ifaces, OTHER, PEER, MD_B) == [pcli_copy(tcp4(OTHER, PEER), 22, MD_B)]

        bmv2.kill()  # the switch dies and loses everything
        time.sleep(max(0.0, short.timeout.timestamp() - time.time()) + 0.5)
        bmv2.start()  # empty switch, no pipeline
        deadline = time.time() + 30
        while time.time() < deadline:
            s = c.switches["s1"]
            if s.conn is not None and s.conn.connected and len(s.believed) > 0:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        assert copies_of(wire, ifaces, SUBJECT, PEER, MD_A) == [pcli_copy(tcp4(SUBJECT, PEER), 21, MD_A)]
        assert copies_of(wire, ifaces, OTHER, PEER, MD_B) == [], "an expired intercept came back"
        assert [m.content_id for m, _, _ in c.intercepts()] == [21]


def test_lower_election_id_cannot_write(network, tmp_path):
    bmv2, _, _ = network
    (tmp_path / "a").mkdir()
    with controller(bmv2, tmp_path / "a", election=10) as primary:
        primary.start()
        # A controller with a lower election id starts (issue 18: it serves what
        # answers) as a backup: it says the switch is not its own and writes nothing.
        second = Controller([switch_config(bmv2, election=5)], tmp_path / "b.db", tmp_path / "b.jsonl")
        second.start(connect_timeout=2.0)
        try:
            assert not second.switches["s1"].conn.is_primary
            assert "another controller is primary" in (tmp_path / "b.jsonl").read_text()
            with pytest.raises(ProvisionError):
                second.provision(*subject_tap(77, SUBJECT, MD_A, 600), actor="test")
            assert second.intercepts() == []
        finally:
            second.stop()
        with SwitchConnection(bmv2.grpc_address, election_id=(0, 5)) as backup:
            assert not backup.is_primary
            entity = primary.switches["s1"].read_actual()[0].entity
            with pytest.raises(NotPrimaryError):
                backup.write([p4r.Update(type=p4r.Update.DELETE, entity=entity)])


def test_failure_part_way_rolls_back_the_whole_intercept(network, tmp_path):
    """An entry the controller does not know about collides with the last
    updates of a new intercept: the switch refuses them mid-write. Every
    update already applied is undone, the intent is not stored, the refusal
    is audited, and the intercept already installed keeps delivering."""
    bmv2, ifaces, wire = network
    with controller(bmv2, tmp_path) as c:
        c.start()
        first, first_streams = subject_tap(31, SUBJECT, MD_A, seconds=600)
        c.provision(first, first_streams, actor="test")
        switch = c.switches["s1"]
        before = {e.key for e in switch.read_actual()}

        # Plan the second intercept the way the controller will, and plant its
        # destination-side gate on the switch directly (the controller cannot know).
        second, second_streams = subject_tap(32, OTHER, MD_B, seconds=600)
        plan = switch.plan(c.intercepts() + [(second, second_streams, ["s1"])], datetime.now(timezone.utc),
                           ids=IdAllocator(switch.ids.replica_ids, switch.ids.session_ids))
        gate = next(g for g in plan.gates if g.prefix.network_address == ipaddress.ip_address(OTHER.ipv4)
                    and g.side.value == "dst")
        planted = switch.builder.encode(gate).entity
        switch.conn.write([p4r.Update(type=p4r.Update.INSERT, entity=planted)])

        with pytest.raises(ProvisionError, match="nothing changed"):
            c.provision(second, second_streams, actor="test")
        after = {e.key for e in switch.read_actual()}
        assert after == before | {key_of(canonical(planted))}, "a half-installed intercept was left behind"
        assert [m.content_id for m, _, _ in c.intercepts()] == [31]
        assert '"refuse"' in (tmp_path / "audit.jsonl").read_text()
        assert copies_of(wire, ifaces, SUBJECT, PEER, MD_A) == [pcli_copy(tcp4(SUBJECT, PEER), 31, MD_A)]
        assert copies_of(wire, ifaces, OTHER, PEER, MD_B) == []
