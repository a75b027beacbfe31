"""The MD's ETSI handover into libtrace's `etsilive` input, the receiving end
OpenLI users read a mediator's handover with: libtrace listens, the MD
connects and streams, libwandder decodes every PS-PDU and answers the MD's
keep-alives with its own encoder, and only that answer frees the MD's spool.
Skipped where no libtrace built with libwandder is found."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from mediation.etsi_delivery import EtsiDelivery
from tests.test_etsi import _tracepktdump
from tests.test_etsi_handover import CCCID, agency, packet, wait_for


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_libtrace_etsilive_receives_the_handover_and_answers_its_keepalives(tmp_path):
    tool = _tracepktdump()
    if tool is None:
        pytest.skip("tracepktdump (libtrace built with libwandder) not found: set P4TAP_TRACEPKTDUMP")
    port = _free_tcp_port()
    first, total = 20, 21
    # libtrace exits after `total` packets: the last one is sent only once the keep-alive after the
    # first 20 has been answered, so libtrace has read (and decoded) them all by then.
    dump = subprocess.Popen([tool, "-c", str(total), f"etsilive:127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    delivery = EtsiDelivery(agency(tmp_path, port))
    try:
        for i in range(first):
            delivery.deliver(time.time(), CCCID, packet(i))
        wait_for(lambda: delivery.status()["hi3"]["acknowledged"] == first or dump.poll() is not None,
                 "libtrace to answer the keep-alive")
        status = delivery.status()["hi3"]
        assert status["responses"] >= 1 and status["acknowledged"] == first, status
        delivery.deliver(time.time(), CCCID, packet(first))
        out, err = dump.communicate(timeout=60)
    finally:
        delivery.close()
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    assert out.count("pS-PDU:") == total, err
    sequence = [line.split("ETSILI:")[1].strip() for line in out.splitlines() if "sequenceNumber:" in line]
    assert sequence == [f"sequenceNumber: {i}" for i in range(total)]
    assert out.count("lawfulInterceptionIdentifier: LEA-A-17") == total
    assert out.count("IP: Source 192.0.2.10 Destination 198.51.100.20") == total
