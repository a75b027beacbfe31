"""The p4tap demo: watch a lawful intercept happen on a bmv2 switch.

Builds four namespace hosts around one switch (subject, peer, another
subscriber, the mediation device), starts bmv2 with the p4tap pipeline,
provisions an intercept of the subject, runs the subject's traffic (ping, an
RTP-like UDP flow, a TCP transfer) and the other subscriber's, and reports per
CCCID what the mediation device captured against what the subject really sent
and received. The capture stays in run/demo/ for Wireshark
(LINKTYPE_RAW; `tshark -r run/demo/cccid-4242.pcap`).

Everything it creates is removed at the end, on failure and on Ctrl-C.

    make run                  # or: sudo .venv/bin/python -m bmv2_topo.demo
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from scapy.all import AsyncSniffer
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from bmv2_topo.bmv2_switch import Bmv2Switch, resolve_target, target_skip_reason
from bmv2_topo.netns import HostSpec, namespace_hosts
from controller.entries import EntryBuilder, inserts
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.pipeline import REPO_ROOT, Pipeline
from controller.plan import IdAllocator, plan_intercepts
from controller.switch import SwitchConnection
from controller.topology import L2Entry, NextHop, Route, SwitchTopology

CCCID = 4242
MD_PORT = 7000
ROUTER_MAC = "02:00:00:00:0d:fe"
HOSTS = [
    HostSpec("subject", 1, "02:00:00:00:0d:01", ("192.0.2.10/24",)),
    HostSpec("peer", 2, "02:00:00:00:0d:02", ("192.0.2.20/24",)),
    HostSpec("other", 3, "02:00:00:00:0d:03", ("192.0.2.30/24",)),
    HostSpec("md", 4, "02:00:00:00:0d:04", ("203.0.113.10/24",), mtu=9000),
]
OUT_DIR = REPO_ROOT / "run" / "demo"

TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.20", 8080)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)
"""
TCP_CLIENT = """
import socket
c = socket.create_connection(("192.0.2.20", 8080), timeout=10)
c.sendall(bytes(200_000)); c.close()
"""
RTP_SINK = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.20", 5004)); s.settimeout(8)
try:
    while True: s.recv(2048)
except socket.timeout:
    pass
"""
RTP_SOURCE = """
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for seq in range(100):   # 2 s of 20 ms G.711 frames: RTP header + 160 bytes
    s.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x5eed) + bytes(160), ("192.0.2.20", 5004))
    time.sleep(0.02)
"""


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def preflight() -> str | None:
    if os.geteuid() != 0:
        return "the demo builds network namespaces and veth pairs: run it as root (sudo make run)"
    reason = target_skip_reason()
    if reason is not None:
        return f"{reason}; or run the demo on p4tap's software switch: P4TAP_TARGET=softswitch make run"
    for tool, package in (("ip", "iproute2"), ("ethtool", "ethtool")):
        if shutil.which(tool) is None:
            return f"the `{tool}` command is missing: make setup installs it (apt-get install {package})"
    return None


def topology() -> SwitchTopology:
    return SwitchTopology(
        ports={h.port: h.port for h in HOSTS},
        l2=tuple(L2Entry(h.mac, h.port) for h in HOSTS),
        routes=(Route(0, ipaddress.ip_network("203.0.113.10/32"), NextHop(4, ROUTER_MAC, HOSTS[3].mac)),),
        tap_sources={4: ipaddress.ip_address("203.0.113.1")},
        tap_source_port=49152,
    )


def subject_intercept(lifetime: timedelta) -> tuple[Mediation, list[Stream]]:
    subject = ipaddress.ip_address("192.0.2.10")
    mediation = Mediation(CCCID, ipaddress.ip_address("203.0.113.10"), MD_PORT,
                          timeout=datetime.now(timezone.utc) + lifetime)
    streams = [
        Stream(CCCID, 1, IpFilter(InetAddressType.IPV4, src_address=subject, src_length=32), True),
        Stream(CCCID, 2, IpFilter(InetAddressType.IPV4, dst_address=subject, dst_length=32), True),
    ]
    return mediation, streams


def ip_bytes(pkt) -> bytes | None:
    layer = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    return bytes(layer) if layer is not None else None


def run_demo(keep_seconds: float) -> int:
    problem = preflight()
    if problem:
        print(f"p4tap demo: cannot run: {problem}", file=sys.stderr)
        return 2
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for old in OUT_DIR.glob("cccid-*.pcap"):
        old.unlink()
    step("creating hosts: subject 192.0.2.10, peer 192.0.2.20, other 192.0.2.30, mediation device 203.0.113.10")
    with namespace_hosts(HOSTS, prefix="p4td") as hosts:
        bmv2 = Bmv2Switch(ports={h.port: hosts[h.name].switch_end for h in HOSTS}, log_file=OUT_DIR / "bmv2.log")
        what = "bmv2 simple_switch_grpc" if resolve_target() == "bmv2" else "p4tap softswitch (no bmv2 here)"
        step(f"starting {what} (log: {OUT_DIR / 'bmv2.log'})")
        bmv2.start()
        receiver = None
        try:
            pipeline = Pipeline.load()
            builder = EntryBuilder(pipeline)
            topo = topology()
            with SwitchConnection(bmv2.grpc_address) as switch:
                step("pushing the p4tap pipeline and forwarding state over P4Runtime")
                switch.set_pipeline(pipeline.p4info, pipeline.device_config, cookie=pipeline.cookie)
                switch.write(inserts(builder.forwarding_entities(topo)))

                step(f"mediation device listening on 203.0.113.10 UDP {MD_PORT}")
                summary = OUT_DIR / "md-summary.json"
                receiver = hosts["md"].popen(sys.executable, "-m", "mediation.receiver", "--listen", "203.0.113.10",
                                             "--port", str(MD_PORT), "--out-dir", str(OUT_DIR),
                                             "--summary-json", str(summary), cwd=REPO_ROOT,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)

                mediation, streams = subject_intercept(timedelta(seconds=keep_seconds))
                plan = plan_intercepts([mediation], streams, topo, IdAllocator(), datetime.now(timezone.utc))
                switch.write(inserts(builder.intercept_entities(plan)))
                step(f"intercept {CCCID} provisioned: all traffic of 192.0.2.10 -> 203.0.113.10:{MD_PORT} "
                     f"({plan.summary()})")

                truth = AsyncSniffer(iface=hosts["subject"].switch_end, store=True)
                other_truth = AsyncSniffer(iface=hosts["other"].switch_end, store=True)
                truth.start()
                other_truth.start()
                time.sleep(0.5)
                step("subject: ping, an RTP-like UDP flow (100 packets) and a 200 kB TCP transfer to the peer")
                sink = hosts["peer"].popen(sys.executable, "-c", RTP_SINK)
                server = hosts["peer"].popen(sys.executable, "-c", TCP_SERVER, stdout=subprocess.PIPE, text=True)
                time.sleep(0.5)
                hosts["subject"].run("ping", "-c", "5", "-i", "0.2", "-W", "1", "192.0.2.20")
                hosts["subject"].run(sys.executable, "-c", RTP_SOURCE)
                hosts["subject"].run(sys.executable, "-c", TCP_CLIENT)
                received_by_peer = server.communicate(timeout=30)[0].strip()
                step("other subscriber: ping to the peer (must not be captured)")
                hosts["other"].run("ping", "-c", "5", "-i", "0.2", "-W", "1", "192.0.2.20")
                time.sleep(1.0)
                truth.stop()
                other_truth.stop()
                sink.wait(timeout=15)
        finally:
            if receiver is not None:
                receiver.send_signal(signal.SIGTERM)
                try:
                    receiver.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    receiver.kill()
            bmv2.stop()
        step("removing hosts and veth pairs")

    subject_packets = [b for b in (ip_bytes(p) for p in truth.results) if b]
    other_packets = [b for b in (ip_bytes(p) for p in other_truth.results) if b]
    md = json.loads(summary.read_text()) if summary.exists() else {"intercepts": []}
    captured = {i["cccid"]: i for i in md["intercepts"]}
    capture_file = OUT_DIR / f"cccid-{CCCID}.pcap"
    captured_packets = [bytes(p) for p in rdpcap(str(capture_file))] if capture_file.exists() else []
    exact = collections.Counter(captured_packets) == collections.Counter(subject_packets)
    leaked = set(other_packets) & set(captured_packets)

    print()
    print("Report")
    print(f"  peer received {received_by_peer} TCP bytes from the subject")
    print(f"  {'CCCID':>6}  {'subject sent+received':>22}  {'MD captured':>12}  {'bytes':>9}  first .. last")
    for cccid, info in sorted(captured.items()):
        span = f"{datetime.fromtimestamp(info['first']):%H:%M:%S.%f} .. {datetime.fromtimestamp(info['last']):%H:%M:%S.%f}"
        print(f"  {cccid:>6}  {len(subject_packets):>22}  {info['packets']:>12}  {info['bytes']:>9}  {span}")
    print(f"  capture identical to the subject's packets, byte for byte: {'yes' if exact else 'NO'}")
    print(f"  other subscriber's packets: {len(other_packets)} on the wire, {len(leaked)} captured")
    print(f"  capture file: {capture_file}  (tshark -r {capture_file})")
    ok = exact and not leaked and set(captured) <= {CCCID} and captured_packets
    print("  verdict:", "the MD received exactly the subject's traffic" if ok else "MISMATCH (see above)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifetime", type=float, default=600, help="intercept lifetime in seconds (default 600)")
    args = parser.parse_args(argv)
    try:
        return run_demo(args.lifetime)
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo created has been removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
