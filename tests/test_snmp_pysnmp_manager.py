"""The agent driven by a pysnmp manager (mediation/snmp_client.py), and fed
what no well-behaved manager sends: every ASN.1 type to every writable
column, huge GETBULKs, and datagrams that are not SNMP at all. The agent
answers each with an error status or silence, and keeps serving."""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from datetime import datetime, timedelta, timezone

import pytest
from pysnmp.proto import rfc1902, rfc1905

from controller.model import StreamKey
from mediation.snmp_client import MEDIATION, STREAM, Filter, TapClient, TapClientError, mediation_varbinds
from mib_bridge.mib import TapTables
from tests.snmp_support import AUTH_KEY, PRIV_KEY, start_agent, switch_controller, tap_switch

ERROR_STATUSES = {"wrongType", "wrongLength", "wrongValue", "noCreation", "notWritable", "inconsistentName",
                  "inconsistentValue"}


@pytest.fixture(scope="module")
def snmp(tmp_path_factory, tap_switch):
    home = tmp_path_factory.mktemp("snmppysnmp")
    controller = switch_controller(home, tap_switch)
    controller.start()
    running = start_agent(home, controller, listen='"127.0.0.1:0"')
    address = running.agent.addresses[0]
    running.client = TapClient(address.host, address.port, "md1", AUTH_KEY, PRIV_KEY)
    running.port = address.port
    yield running
    running.client.close()
    running.agent.stop()
    controller.stop()


def hour() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


def alive(snmp) -> None:
    assert snmp.client.get((1, 3, 6, 1, 2, 1, 1, 5, 0))[0][1] == rfc1902.OctetString(b"p4tap-test")


def test_provision_walk_and_remove_with_pysnmp(snmp):
    c = snmp.client
    c.provision(301, "203.0.113.10", 7000, hour(), [Filter(src="192.0.2.10/32"), Filter(dst="192.0.2.10/32")])
    m, streams, _ = next(i for i in snmp.controller.intercepts() if i[0].content_id == 301)
    assert [s.key for s in streams] == [StreamKey(301, 1), StreamKey(301, 2)]
    rows = dict(c.walk(STREAM))
    assert rows[STREAM + (6, 301, 1)] == 1 and rows[STREAM + (6, 301, 2)] == 1
    assert rows[STREAM + (7, 301, 2)] == rfc1902.Counter64(0)
    c.remove(301, streams=2)
    assert not [i for i in snmp.controller.intercepts() if i[0].content_id == 301]


def test_error_status_and_index_through_pysnmp(snmp):
    varbinds = mediation_varbinds(302, ipaddress.ip_address("203.0.113.10"), 7000, hour())
    varbinds[4] = (varbinds[4][0], rfc1902.Integer32(99))  # Dscp out of range
    with pytest.raises(TapClientError) as caught:
        snmp.client.set(varbinds)
    assert caught.value.status == "wrongValue" and caught.value.index == 5


# -- what the agent must survive -------------------------------------------------------

VALUES = [rfc1902.Integer32(-1), rfc1902.Integer32(2**31 - 1), rfc1902.OctetString(b""),
          rfc1902.OctetString(b"\xff" * 300), rfc1902.Gauge32(2**32 - 1), rfc1902.Counter32(5),
          rfc1902.Counter64(2**64 - 1), rfc1902.IpAddress("192.0.2.1"), rfc1902.TimeTicks(1),
          rfc1902.ObjectIdentifier((1, 3, 6)), rfc1902.Opaque(b"\x01"), rfc1902.Bits(b"\x80")]


def test_every_type_to_every_writable_column_gets_an_error_status(snmp):
    tables = TapTables(1, 1)
    rng = random.Random(7)
    for table in (*tables.intercept_tables, tables.debug):
        index = tuple(rng.randint(400, 499) for _ in table.index_ranges)
        for column in table.columns:
            for value in VALUES:
                try:
                    snmp.client.set([(table.instance(column, index), value)])
                except TapClientError as error:
                    assert error.status in ERROR_STATUSES, (table.name, column, value, error)
    alive(snmp)


def test_odd_indexes_and_oids(snmp):
    for oid in [MEDIATION + (13,), MEDIATION + (13, 0), MEDIATION + (13, 2**31), MEDIATION + (13, 1, 2, 3),
                MEDIATION + (13, 2**32 - 1), STREAM + (6, 1), (1, 3, 6, 1, 4, 1, 9, 9, 399), (1, 3), (0, 0),
                MEDIATION + (13,) + (7,) * 100]:
        with pytest.raises(TapClientError) as caught:
            snmp.client.set([(oid, rfc1902.Integer32(4))])
        assert caught.value.status in ERROR_STATUSES | {"noAccess"}  # (1, 3) and (0, 0): outside every view
        got = snmp.client.get(oid)
        assert got[0][1].tagSet in (rfc1905.noSuchObject.tagSet, rfc1905.noSuchInstance.tagSet)
    alive(snmp)


def test_huge_getbulk_is_cut_to_fit(snmp):
    from pysnmp.hlapi.v3arch.asyncio import ObjectIdentity, ObjectType, bulk_cmd
    c = snmp.client
    for filters in range(30):
        c.set(mediation_varbinds(500 + filters, ipaddress.ip_address("203.0.113.10"), 7000, hour()))
    result = c._run(bulk_cmd(c.engine, c.user, c.target, c.context, 0, 10000,
                             ObjectType(ObjectIdentity((1, 3, 6, 1))), ObjectType(ObjectIdentity((1, 3, 6, 1, 4))),
                             lookupMib=False))
    indication, status, _, varbinds = result
    assert not indication and not status and 0 < len(varbinds) <= 512
    for filters in range(30):
        c.set([(MEDIATION + (13, 500 + filters), rfc1902.Integer32(6))])
    alive(snmp)


def test_garbage_datagrams_do_not_hurt(snmp):
    rng = random.Random(11)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        samples = [b"", b"\x30", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01\x03", os.urandom(1500),
                   bytes.fromhex("302902010304") + os.urandom(40)]
        samples += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))) for _ in range(200)]
        for data in samples:
            sock.sendto(data, ("127.0.0.1", snmp.port))
    finally:
        sock.close()
    alive(snmp)
    assert snmp.agent._thread.is_alive()
