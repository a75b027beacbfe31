"""Wireshark reads p4tap's copies as `pcli`: the CCCID, then exactly the
original IP packet, with correct outer IP and UDP checksums.

Real copies from bmv2, decoded by Debian's tshark (`-d udp.port==PORT,pcli`).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.service import Controller, SwitchConfig
from ptf_tests.base import MD_A, MD_B, PEER, SUBJECT, tcp4, udp6, lab_topology
from tests.conftest import needs_bmv2, needs_root

pytestmark = [needs_bmv2, needs_root,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make setup installs it)")]


def tshark_fields(pcap, port: int) -> list[list[str]]:
    result = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"udp.port=={port},pcli", "-o", "udp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
         "-e", "pcli.cccid", "-e", "data.data", "-e", "udp.checksum.status", "-e", "ip.checksum.status"],
        capture_output=True, text=True, check=True)
    return [line.split("|") for line in result.stdout.splitlines() if line]


def test_tshark_decodes_copies_as_pcli(network, tmp_path):
    bmv2, ifaces, wire = network
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    v4 = ipaddress.ip_address(SUBJECT.ipv4)
    v6 = ipaddress.ip_address(SUBJECT.ipv6)
    with Controller([SwitchConfig("s1", bmv2.grpc_address, lab_topology())], tmp_path / "i.db",
                    tmp_path / "a.jsonl") as c:
        c.start()
        c.provision(Mediation(7001, ipaddress.ip_address(MD_A.ipv4), 7000, timeout=later),
                    [Stream(7001, 1, IpFilter(InetAddressType.IPV4, src_address=v4, src_length=32), True)], "test")
        c.provision(Mediation(7002, ipaddress.ip_address(MD_B.ipv6), 7000, timeout=later),
                    [Stream(7002, 1, IpFilter(InetAddressType.IPV6, src_address=v6, src_length=128), True)], "test")
        originals = {7001: tcp4(SUBJECT, PEER), 7002: udp6(SUBJECT, PEER)}
        copies = []
        wire.drain()
        for cccid, pkt in originals.items():
            wire.send(ifaces[SUBJECT.port], bytes(pkt))
            got = wire.collect(0.5)
            md = MD_A if cccid == 7001 else MD_B
            assert len(got[ifaces[md.port]]) == 1, f"expected one copy for {cccid}"
            copies.append(Ether(got[ifaces[md.port]][0]))
    pcap = tmp_path / "copies.pcap"
    wrpcap(str(pcap), copies)
    rows = tshark_fields(pcap, 7000)
    assert len(rows) == 2
    for (cccid, data, udp_ok, ip_ok), (want_cccid, original) in zip(rows, originals.items()):
        inner = original.getlayer(IP) or original.getlayer(IPv6)
        assert int(cccid) == want_cccid
        assert bytes.fromhex(data) == bytes(inner), "pcli payload is not the original IP packet"
        # Wireshark checksum status: 0 bad, 1 good, 2 unverified; IPv6 has no header checksum.
        assert udp_ok == "1", f"UDP checksum status {udp_ok} (1 = good)"
        assert ip_ok == ("1" if want_cccid == 7001 else ""), f"outer IPv4 header checksum status {ip_ok}"
