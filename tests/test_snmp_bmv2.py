"""End to end on bmv2: a mediation device provisions over SNMPv3 with
net-snmp's snmpset (REFERENCE.md's three createAndGo PDUs, numeric OIDs),
the subject's packets reach the MD's UDP socket as pcli with that CCCID,
other traffic does not, the switch's counters read back over SNMP, the
Timeout passes, copies stop, and the ciscoTap2MediationTimedOut inform
reaches snmptrapd; the teardown test provisions as users of SHA-256/AES,
SHA-1/AES and MD5/DES.

The MD is a network namespace (203.0.113.10 on switch port 4) running
mediation.receiver, a real UDP socket; the other hosts are veth ends driven
with raw frames. SNMP runs on loopback only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from scapy.layers.inet import IP
from scapy.utils import rdpcap

from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.netns import HostSpec, namespace_hosts
from bmv2_topo.veth import veth_pairs
from bmv2_topo.wire import Wire
from controller.pipeline import P4TAP, REPO_ROOT
from controller.service import Controller, SwitchConfig
from ptf_tests import base
from ptf_tests.base import MD_A, OTHER, PEER, SUBJECT, tcp4, udp4
from tests.conftest import needs_bmv2, needs_root
from tests.snmp_support import (INTEROP_USERS, MED, STREAM, TAP2, TrapReceiver, date_and_time, filter_pdu,
                                free_udp_port, mediation_pdu, needs_net_snmp, start_agent, stream_pdu, user_tables)

needs_pipeline = pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`")
pytestmark = [needs_bmv2, needs_root, needs_net_snmp, needs_pipeline]

CCCID, OTHER_CCCID, MD_PORT = 4242, 4243, 7000


@pytest.fixture
def network(tmp_path):
    md = HostSpec("md", MD_A.port, MD_A.mac, (f"{MD_A.ipv4}/24",))
    plain = [h.port for h in (SUBJECT, PEER, OTHER)] + [5]
    with namespace_hosts([md], prefix="p4sn") as hosts, veth_pairs(plain, prefix="p4sv") as pairs:
        ports = {p.port: p.switch_end for p in pairs} | {MD_A.port: hosts["md"].switch_end}
        bmv2 = Bmv2Switch(ports=ports, log_file=tmp_path / "bmv2.log")
        bmv2.start()
        try:
            with Wire(p.host_end for p in pairs) as wire:
                yield bmv2, {p.port: p.host_end for p in pairs}, wire, hosts["md"]
        finally:
            bmv2.stop()


class Receiver:
    """mediation.receiver in the MD's namespace: a UDP socket on 203.0.113.10:7000."""

    def __init__(self, host, out) -> None:
        self.summary = out / "summary.json"
        self.out = out
        self.proc = host.popen(sys.executable, "-m", "mediation.receiver", "--listen", MD_A.ipv4, "--port",
                               str(MD_PORT), "--out-dir", str(out), "--summary-json", str(self.summary),
                               cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # the socket is bound before traffic starts
        assert self.proc.poll() is None, self.proc.stderr.read().decode()

    def finish(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        return json.loads(self.summary.read_text())

    def packets(self, cccid: int) -> list[bytes]:
        return [bytes(p) for p in rdpcap(str(self.out / f"cccid-{cccid}.pcap"))]


def send(wire, ifaces, frames) -> None:
    for host, pkt in frames:
        wire.send(ifaces[host.port], bytes(pkt))
    wire.collect(0.3)


def inner(pkt) -> bytes:
    return bytes(pkt[IP])[: pkt[IP].len]


def test_snmp_provisioned_tap_on_bmv2_until_timeout(network, tmp_path):
    bmv2, ifaces, wire, md_host = network
    controller = Controller([SwitchConfig("s1", bmv2.grpc_address, base.lab_topology())], tmp_path / "intent.db",
                            tmp_path / "audit.jsonl")
    trap_port = free_udp_port()
    trapd = TrapReceiver(tmp_path, trap_port)
    notify = f'\n[[notify]]\ntarget = "127.0.0.1:{trap_port}"\nuser = "md1"\ntype = "inform"\n'
    receiver = snmp = None
    try:
        controller.start()
        snmp = start_agent(tmp_path, controller, notify=notify, listen='"127.0.0.1:0"')
        net = snmp.net
        receiver = Receiver(md_host, tmp_path / "captures")

        # 1. provision: mediation, filter, stream; twice, so the subject is tapped both ways
        assert net.set(*mediation_pdu(CCCID, md=MD_A.ipv4, port=MD_PORT, seconds=600)).code == 0
        for index, where in ((1, {"src": SUBJECT.ipv4}), (2, {"dst": SUBJECT.ipv4})):
            assert net.set(*filter_pdu(CCCID, index, **where)).code == 0
            r = net.set(*stream_pdu(CCCID, index))
            assert r.code == 0, r.err
        trapd.wait_for(f"{STREAM}.2.{CCCID}.2 = INTEGER: 1")  # ciscoTap2MIBActive for both streams

        # 2. traffic: the subject's both ways, and someone else's
        subject_out = [tcp4(SUBJECT, PEER, sport=41000 + i) for i in range(5)]
        subject_in = [udp4(PEER, SUBJECT, sport=42000 + i) for i in range(3)]
        others = [tcp4(OTHER, PEER, sport=43000 + i) for i in range(4)]
        send(wire, ifaces, [(SUBJECT, p) for p in subject_out] + [(PEER, p) for p in subject_in]
             + [(OTHER, p) for p in others])

        # 3. counters over SNMP, from the switch
        time.sleep(1.2)
        counts = net.get(f"{STREAM}.4.{CCCID}.1", f"{STREAM}.4.{CCCID}.2", f"{STREAM}.7.{CCCID}.1").values()
        assert counts == {f"{STREAM}.4.{CCCID}.1": "Counter32: 5", f"{STREAM}.4.{CCCID}.2": "Counter32: 3",
                          f"{STREAM}.7.{CCCID}.1": "Counter64: 5"}

        # 4. the Timeout, changed while active, passes: copies stop and the MD is told
        assert net.set((f"{MED}.10.{CCCID}", "x", date_and_time(3))).code == 0
        text = trapd.wait_for(f"{MED}.13.{CCCID} = INTEGER: 6", seconds=20)
        assert f"OID: .{TAP2}.0.2" in text
        assert controller.intercepts() == []
        assert "No Such Instance" in net.get(f"{MED}.13.{CCCID}").out
        late = [tcp4(SUBJECT, PEER, sport=44000 + i) for i in range(3)]
        send(wire, ifaces, [(SUBJECT, p) for p in late])

        summary = receiver.finish()
        counted = {i["cccid"]: i["packets"] for i in summary["intercepts"]}
        assert counted == {CCCID: 8}, summary
        assert summary["malformed"] == 0
        got = receiver.packets(CCCID)
        assert sorted(got) == sorted(inner(p) for p in subject_out + subject_in)
    finally:
        if receiver is not None and receiver.proc.poll() is None:
            receiver.proc.kill()
        if snmp is not None:
            snmp.agent.stop()
        controller.stop()
        trapd.stop()


@pytest.mark.parametrize("user", ["md1", "sha1", "md5des"])
def test_snmp_teardown_stops_copies_on_bmv2(network, tmp_path, user):
    """As each user: SHA-256/AES, SHA-1/AES (HMAC-SHA-96) and MD5/DES (opted in), the protocols deployed MDs speak."""
    bmv2, ifaces, wire, md_host = network
    controller = Controller([SwitchConfig("s1", bmv2.grpc_address, base.lab_topology())], tmp_path / "intent.db",
                            tmp_path / "audit.jsonl")
    try:
        controller.start()
        snmp = start_agent(tmp_path, controller, listen='"127.0.0.1:0"', extra_users=user_tables())
        net = snmp.net
        creds = net.credentials() if user == "md1" else net.credentials(
            user, auth_protocol=INTEROP_USERS[user][2], priv_protocol=INTEROP_USERS[user][3])
        receiver = Receiver(md_host, tmp_path / "captures")
        for pdu in (mediation_pdu(OTHER_CCCID, md=MD_A.ipv4, port=MD_PORT), filter_pdu(OTHER_CCCID, 1, src=OTHER.ipv4),
                    stream_pdu(OTHER_CCCID, 1)):
            assert net.set(*pdu, creds=creds).code == 0
        send(wire, ifaces, [(OTHER, tcp4(OTHER, PEER, sport=45000))])
        # tear down in reverse, as REFERENCE.md says
        for oid in (f"{STREAM}.6.{OTHER_CCCID}.1", f"1.3.6.1.4.1.9.9.394.1.1.2.1.16.{OTHER_CCCID}.1",
                    f"{MED}.13.{OTHER_CCCID}"):
            assert net.set((oid, "i", "6"), creds=creds).code == 0
        assert controller.intercepts() == []
        actual = controller.switches["s1"].read_actual()
        switch = controller.switches["s1"]
        desired = switch.desired(switch.plan([], datetime.now(timezone.utc)))
        assert len(actual) == len(desired), "intercept entries left on the switch"
        send(wire, ifaces, [(OTHER, tcp4(OTHER, PEER, sport=45001))])
        summary = receiver.finish()
        assert {i["cccid"]: i["packets"] for i in summary["intercepts"]} == {OTHER_CCCID: 1}
        snmp.agent.stop()
    finally:
        controller.stop()
