"""The TAP-MIB agent through net-snmp's own tools, numeric OIDs only, as a
mediation device drives it: the three createAndGo PDUs of REFERENCE.md, the
createAndWait way, reads and walks, then one test per RowStatus rule, per MIB
rule and per RFC 3416 error. The controller behind the agent is real and
drives a real switch (tests/snmp_support.py: bmv2, else the softswitch);
tests/test_snmp_bmv2.py adds packets.
"""

from __future__ import annotations

import ipaddress
import time

import pytest

from p4protos import p4runtime_pb2 as p4r

from controller.model import InetAddressType, IpFilter, Mediation, Stream, StreamKey
from tests.snmp_support import (DEBUG, FILTER, IP_TAP, MED, NEW_INDEX, STREAM, TAP2, date_and_time, filter_pdu,
                                hex_ip, ipv6_loopback, mediation_pdu, needs_net_snmp, running_switch, start_agent,
                                stream_pdu, switch_controller, tap_switch)

pytestmark = needs_net_snmp
LISTEN = '"127.0.0.1:0", "[::1]:0"' if ipv6_loopback() else '"127.0.0.1:0"'
SUBJECT = "192.0.2.10"


@pytest.fixture(scope="module")
def snmp(tmp_path_factory, tap_switch):
    home = tmp_path_factory.mktemp("snmp")
    controller = switch_controller(home, tap_switch)
    controller.start()
    running = start_agent(home, controller, listen=LISTEN)
    yield running
    running.agent.stop()
    controller.stop()


def intercept(snmp, content_id):
    return next(((m, s) for m, s, _ in snmp.controller.intercepts() if m.content_id == content_id), None)


def provision(snmp, content_id, src=SUBJECT, stream=1, seconds=3600):
    for pdu in (mediation_pdu(content_id, seconds=seconds), filter_pdu(content_id, stream, src=src),
                stream_pdu(content_id, stream)):
        r = snmp.net.set(*pdu)
        assert r.code == 0, r.err


def teardown(snmp, content_id, streams=(1,)):
    for s in streams:
        snmp.net.set((f"{STREAM}.6.{content_id}.{s}", "i", "6"))
        snmp.net.set((f"{FILTER}.16.{content_id}.{s}", "i", "6"))
    snmp.net.set((f"{MED}.13.{content_id}", "i", "6"))


def refused(result, status, oid=None):
    assert result.code != 0, f"the SET was accepted: {result.out}"
    assert result.error is not None, result.err
    assert result.error[0] == status, result.err
    if oid is not None:
        assert result.error[1] == oid, result.err


def rows_of(snmp, content_id):
    """Every instance of the three intercept tables under `content_id`."""
    found = {}
    for root in (MED, STREAM, FILTER):
        depth = len(root.split(".")) + 1
        found.update({k: v for k, v in snmp.net.walk(root).values().items()
                      if k.split(".")[depth:depth + 1] == [str(content_id)]})
    return found


# -- provisioning as mediation devices do -------------------------------------------

def test_three_pdu_create_and_go_provisions_the_intercept(snmp):
    provision(snmp, 101)
    m, streams = intercept(snmp, 101)
    assert (m.dest_address, m.dest_port, m.dscp, m.transport, m.notification_enable) == \
        (ipaddress.ip_address("203.0.113.10"), 7000, 34, 1, True)
    assert abs(m.timeout.timestamp() - (time.time() + 3600)) < 5
    assert streams == [Stream(101, 1, IpFilter(InetAddressType.IPV4, src_address=ipaddress.ip_address(SUBJECT),
                                               src_length=32), True)]
    values = snmp.net.get(*(f"{MED}.{c}.101" for c in range(2, 14))).values()
    assert values[f"{MED}.2.101"] == "INTEGER: 1"
    assert values[f"{MED}.3.101"].replace(" ", "").endswith(hex_ip("203.0.113.10").upper())
    assert values[f"{MED}.4.101"] == "Gauge32: 7000"
    assert values[f"{MED}.6.101"] == "Gauge32: 0"  # RtcpPort: rtpNack is not offered
    assert values[f"{MED}.8.101"] == values[f"{MED}.9.101"] == "INTEGER: 0"  # DEFVALs
    assert values[f"{MED}.12.101"] == "INTEGER: 1"  # NotificationEnable DEFVAL true
    assert values[f"{MED}.13.101"] == "INTEGER: 1"  # active
    stream = snmp.net.get(*(f"{STREAM}.{c}.101.1" for c in range(2, 9))).values()
    assert stream[f"{STREAM}.6.101.1"] == "INTEGER: 1"
    assert stream[f"{STREAM}.4.101.1"] == "Counter32: 0" and stream[f"{STREAM}.7.101.1"] == "Counter64: 0"
    teardown(snmp, 101)
    assert intercept(snmp, 101) is None
    assert rows_of(snmp, 101) == {}


def test_filter_row_has_every_column_with_the_mib_wildcards(snmp):
    provision(snmp, 102)
    values = snmp.net.walk(f"{FILTER}").values()
    mine = {k.rsplit(".", 3)[-3]: v for k, v in values.items() if k.endswith(".102.1")}
    assert set(mine) == {str(c) for c in range(1, 17)}
    assert mine["9"] == "INTEGER: -1" and mine["10"] == "INTEGER: -1"  # FlowId, Protocol: any
    assert (mine["11"], mine["12"], mine["13"], mine["14"]) == ("Gauge32: 0", "Gauge32: 65535", "Gauge32: 0",
                                                                 "Gauge32: 65535")
    assert mine["15"] == '""'  # VRF: the global table
    teardown(snmp, 102)


def test_teardown_in_reverse_order_removes_intercept_then_rows(snmp):
    provision(snmp, 103)
    assert snmp.net.set((f"{STREAM}.6.103.1", "i", "6")).code == 0
    assert intercept(snmp, 103) is None  # no stream: nothing on the switch
    assert snmp.net.get(f"{MED}.13.103").values()[f"{MED}.13.103"] == "INTEGER: 1"  # the row stays active
    assert snmp.net.set((f"{FILTER}.16.103.1", "i", "6")).code == 0
    assert snmp.net.set((f"{MED}.13.103", "i", "6")).code == 0
    assert "No Such Instance" in snmp.net.get(f"{MED}.13.103").out


def test_create_and_wait_then_sets_then_active(snmp):
    c = 104
    assert snmp.net.set((f"{MED}.13.{c}", "i", "5")).code == 0
    assert snmp.net.get(f"{MED}.13.{c}").values()[f"{MED}.13.{c}"] == "INTEGER: 3"  # notReady
    assert "No Such Instance" in snmp.net.get(f"{MED}.3.{c}").out  # unset column
    assert snmp.net.get(f"{MED}.7.{c}").values()[f"{MED}.7.{c}"] == "INTEGER: 34"  # DEFVAL
    for oid, t, v in mediation_pdu(c)[:-1]:
        assert snmp.net.set((oid, t, v)).code == 0
    assert snmp.net.get(f"{MED}.13.{c}").values()[f"{MED}.13.{c}"] == "INTEGER: 2"  # notInService
    assert snmp.net.set((f"{FILTER}.16.{c}.1", "i", "5")).code == 0
    for oid, t, v in filter_pdu(c, 1, dst=SUBJECT)[:-1]:
        assert snmp.net.set((oid, t, v)).code == 0
    assert snmp.net.set((f"{STREAM}.6.{c}.1", "i", "5"), (f"{STREAM}.2.{c}.1", "i", "1"),
                        (f"{STREAM}.3.{c}.1", "i", "1")).code == 0
    assert intercept(snmp, c) is None  # nothing active yet
    for oid in (f"{MED}.13.{c}", f"{FILTER}.16.{c}.1", f"{STREAM}.6.{c}.1"):
        assert snmp.net.set((oid, "i", "1")).code == 0
    m, streams = intercept(snmp, c)
    assert streams[0].filter.dst_address == ipaddress.ip_address(SUBJECT) and streams[0].enabled
    teardown(snmp, c)


def test_ipv6_mediation_and_filter_over_ipv6_transport(snmp):
    if snmp.net6 is snmp.net:
        pytest.skip("no IPv6 loopback on this machine")
    net = snmp.net6
    assert net.set(*mediation_pdu(105, md="2001:db8:ff::10")).code == 0
    assert net.set(*filter_pdu(105, 1, src="2001:db8:1::10")).code == 0
    assert net.set(*stream_pdu(105, 1)).code == 0
    m, streams = intercept(snmp, 105)
    assert m.dest_address == ipaddress.ip_address("2001:db8:ff::10")
    assert streams[0].filter.src_address == ipaddress.ip_address("2001:db8:1::10")
    values = net.get(f"{FILTER}.3.105.1").values()  # unset destination: 16 zero octets for ipv6
    assert values[f"{FILTER}.3.105.1"].replace(" ", "").endswith("00" * 16)
    teardown(snmp, 105)


def test_new_index_is_fresh_on_every_read_and_never_in_use(snmp):
    provision(snmp, 1)
    seen = []
    for _ in range(3):
        value = snmp.net.get(NEW_INDEX).values()[NEW_INDEX]
        seen.append(int(value.split(": ")[1]))
    assert len(set(seen)) == 3 and 1 not in seen
    teardown(snmp, 1)


def test_capabilities_advertise_only_what_works(snmp):
    values = snmp.net.run("snmpget", ["-Ox", f"{TAP2}.1.1.3.0", f"{IP_TAP}.1.1.1.0"]).values()
    # ipV4SrcInterface, ipV6SrcInterface, udp; not rtpNack, tcp, sctp, rtp (no ETS or priority bit exists)
    assert values[f"{TAP2}.1.1.3.0"] == "Hex-STRING: E0 "
    # interface, ipV4, ipV6, l4Port, dscp; not tapEnable, voip
    assert values[f"{IP_TAP}.1.1.1.0"] == "Hex-STRING: 7C "


def test_walk_and_bulkwalk_agree_and_are_ordered(snmp):
    provision(snmp, 106)
    provision(snmp, 107, src="192.0.2.30")
    walk = snmp.net.walk("1.3.6.1.4.1.9.9")
    bulk = snmp.net.bulkwalk("1.3.6.1.4.1.9.9")
    fresh = {NEW_INDEX: None}  # a new value at every read
    assert walk.values() | fresh == bulk.values() | fresh and len(walk.values()) > 40
    names = [tuple(map(int, k.split("."))) for k in walk.values()]
    assert names == sorted(names)
    teardown(snmp, 106)
    teardown(snmp, 107)


def test_get_of_missing_instance_and_unknown_object(snmp):
    out = snmp.net.get(f"{MED}.13.999999", f"{TAP2}.1.1.9.0", "1.3.6.1.2.1.1.5.0").out
    assert "No Such Instance" in out and "No Such Object" in out and "p4tap-test" in out


# -- RowStatus rules ------------------------------------------------------------------

def test_create_and_go_without_a_required_column_creates_nothing(snmp):
    pdu = [v for v in mediation_pdu(110) if f"{MED}.10." not in v[0]]  # no Timeout
    refused(snmp.net.set(*pdu), "inconsistentValue", f"{MED}.13.110")
    assert rows_of(snmp, 110) == {}


def test_create_on_an_existing_row_is_inconsistent(snmp):
    assert snmp.net.set(*mediation_pdu(111)).code == 0
    refused(snmp.net.set((f"{MED}.13.111", "i", "4")), "inconsistentValue")
    refused(snmp.net.set((f"{MED}.13.111", "i", "5")), "inconsistentValue")
    snmp.net.set((f"{MED}.13.111", "i", "6"))


def test_active_while_not_ready_is_inconsistent(snmp):
    assert snmp.net.set((f"{MED}.13.112", "i", "5")).code == 0
    refused(snmp.net.set((f"{MED}.13.112", "i", "1")), "inconsistentValue")
    refused(snmp.net.set((f"{MED}.13.112", "i", "2")), "inconsistentValue")
    snmp.net.set((f"{MED}.13.112", "i", "6"))


def test_not_ready_may_never_be_written(snmp):
    refused(snmp.net.set((f"{MED}.13.113", "i", "3")), "wrongValue")


def test_a_column_of_a_row_that_does_not_exist_is_inconsistent_name(snmp):
    refused(snmp.net.set((f"{MED}.7.114", "i", "10")), "inconsistentName", f"{MED}.7.114")


def test_activating_a_row_that_does_not_exist_is_inconsistent(snmp):
    refused(snmp.net.set((f"{MED}.13.115", "i", "1")), "inconsistentValue")
    refused(snmp.net.set((f"{MED}.13.115", "i", "2")), "inconsistentValue")


def test_destroying_a_row_that_does_not_exist_is_fine(snmp):
    assert snmp.net.set((f"{MED}.13.116", "i", "6")).code == 0


def test_timeout_may_change_while_active(snmp):
    provision(snmp, 117)
    before = intercept(snmp, 117)[0].timeout
    assert snmp.net.set((f"{MED}.10.117", "x", date_and_time(7200))).code == 0
    after = intercept(snmp, 117)[0].timeout
    assert 3500 < (after - before).total_seconds() < 3700
    teardown(snmp, 117)


def test_other_mediation_columns_need_not_in_service(snmp):
    assert snmp.net.set(*mediation_pdu(118)).code == 0
    refused(snmp.net.set((f"{MED}.7.118", "i", "46")), "inconsistentValue", f"{MED}.7.118")
    assert snmp.net.set((f"{MED}.7.118", "i", "34")).code == 0  # the value it already has
    assert snmp.net.set((f"{MED}.13.118", "i", "2"), (f"{MED}.7.118", "i", "46")).code == 0
    assert snmp.net.set((f"{MED}.13.118", "i", "1")).code == 0
    assert snmp.net.get(f"{MED}.7.118").values()[f"{MED}.7.118"] == "INTEGER: 46"
    snmp.net.set((f"{MED}.13.118", "i", "6"))


def test_mediation_with_streams_cannot_be_destroyed_or_deactivated(snmp):
    provision(snmp, 119)
    refused(snmp.net.set((f"{MED}.13.119", "i", "6")), "inconsistentValue", f"{MED}.13.119")
    refused(snmp.net.set((f"{MED}.13.119", "i", "2")), "inconsistentValue", f"{MED}.13.119")
    assert intercept(snmp, 119) is not None
    # ... but all of it in one PDU, streams first or not, is fine
    assert snmp.net.set((f"{MED}.13.119", "i", "6"), (f"{FILTER}.16.119.1", "i", "6"),
                        (f"{STREAM}.6.119.1", "i", "6")).code == 0
    assert intercept(snmp, 119) is None and rows_of(snmp, 119) == {}


def test_intercept_enable_needs_the_filter_row(snmp):
    assert snmp.net.set(*mediation_pdu(120)).code == 0
    refused(snmp.net.set(*stream_pdu(120, 1)), "inconsistentValue", f"{STREAM}.6.120.1")
    assert snmp.net.set(*stream_pdu(120, 1, enable=False)).code == 0
    refused(snmp.net.set((f"{STREAM}.3.120.1", "i", "1")), "inconsistentValue", f"{STREAM}.3.120.1")
    assert snmp.net.set(*filter_pdu(120, 1, src=SUBJECT)).code == 0
    assert intercept(snmp, 120)[1][0].enabled is False
    assert snmp.net.set((f"{STREAM}.3.120.1", "i", "1")).code == 0  # may change while active
    assert intercept(snmp, 120)[1][0].enabled is True
    teardown(snmp, 120)


def test_a_stream_and_a_filter_need_their_mediation(snmp):
    refused(snmp.net.set(*stream_pdu(121, 1, enable=False)), "inconsistentName", f"{STREAM}.6.121.1")
    refused(snmp.net.set(*filter_pdu(121, 1, src=SUBJECT)), "inconsistentName", f"{FILTER}.16.121.1")


def test_stream_type_needs_not_in_service(snmp):
    provision(snmp, 122)
    assert snmp.net.set((f"{STREAM}.2.122.1", "i", "1")).code == 0  # unchanged
    refused(snmp.net.set((f"{STREAM}.2.122.1", "i", "2")), "wrongValue")  # mac(2): not offered at all
    teardown(snmp, 122)


def test_filter_changes_need_not_in_service_and_stop_the_stream_meanwhile(snmp):
    provision(snmp, 123)
    refused(snmp.net.set((f"{FILTER}.10.123.1", "i", "6")), "inconsistentValue", f"{FILTER}.10.123.1")
    assert snmp.net.set((f"{FILTER}.16.123.1", "i", "2")).code == 0
    assert intercept(snmp, 123) is None  # the only stream's filter is out of service
    assert snmp.net.set((f"{FILTER}.10.123.1", "i", "6")).code == 0
    assert snmp.net.set((f"{FILTER}.16.123.1", "i", "1")).code == 0
    assert intercept(snmp, 123)[1][0].filter.protocol == 6
    teardown(snmp, 123)


def test_filter_of_an_enabled_stream_cannot_be_destroyed(snmp):
    provision(snmp, 124)
    refused(snmp.net.set((f"{FILTER}.16.124.1", "i", "6")), "inconsistentValue", f"{FILTER}.16.124.1")
    teardown(snmp, 124)


# -- MIB value rules ------------------------------------------------------------------------

def test_tos_byte_outside_its_mask_is_refused(snmp):
    assert snmp.net.set(*mediation_pdu(130)).code == 0
    pdu = [v for v in filter_pdu(130, 1, src=SUBJECT) if f"{FILTER}.7." not in v[0] and f"{FILTER}.8." not in v[0]]
    refused(snmp.net.set(*pdu, (f"{FILTER}.7.130.1", "i", "185"), (f"{FILTER}.8.130.1", "i", "252")),
            "inconsistentValue", f"{FILTER}.16.130.1")  # 0xb9 has bit 0, the mask 0xfc has not
    refused(snmp.net.set(*pdu, (f"{FILTER}.7.130.1", "i", "4"), (f"{FILTER}.8.130.1", "i", "0")),
            "inconsistentValue", f"{FILTER}.16.130.1")
    assert snmp.net.set(*pdu, (f"{FILTER}.7.130.1", "i", "184"), (f"{FILTER}.8.130.1", "i", "252")).code == 0
    assert intercept(snmp, 130) is None  # a filter without a stream installs nothing
    assert snmp.net.get(f"{FILTER}.7.130.1").values()[f"{FILTER}.7.130.1"] == "INTEGER: 184"
    snmp.net.set((f"{FILTER}.16.130.1", "i", "6"), (f"{MED}.13.130", "i", "6"))


def test_port_minimum_above_maximum_is_refused(snmp):
    assert snmp.net.set(*mediation_pdu(131)).code == 0
    refused(snmp.net.set(*filter_pdu(131, 1, src=SUBJECT), (f"{FILTER}.11.131.1", "u", "5000"),
                         (f"{FILTER}.12.131.1", "u", "4000")), "inconsistentValue", f"{FILTER}.16.131.1")
    snmp.net.set((f"{MED}.13.131", "i", "6"))


def test_prefix_length_must_fit_the_address_type(snmp):
    assert snmp.net.set(*mediation_pdu(132)).code == 0
    pdu = [v for v in filter_pdu(132, 1, src=SUBJECT) if f"{FILTER}.6." not in v[0]]
    refused(snmp.net.set(*pdu, (f"{FILTER}.6.132.1", "u", "33")), "inconsistentValue")
    refused(snmp.net.set(*pdu, (f"{FILTER}.6.132.1", "u", "129")), "wrongValue", f"{FILTER}.6.132.1")
    snmp.net.set((f"{MED}.13.132", "i", "6"))


def test_only_udp_transport(snmp):
    for transport in ("2", "3", "4", "5", "9"):
        pdu = [v if f"{MED}.11." not in v[0] else (v[0], "i", transport) for v in mediation_pdu(133)]
        refused(snmp.net.set(*pdu), "wrongValue", f"{MED}.11.133")


def test_timeout_in_the_past_is_refused(snmp):
    refused(snmp.net.set(*mediation_pdu(134, seconds=-60)), "inconsistentValue", f"{MED}.13.134")


def test_address_length_must_match_its_type(snmp):
    pdu = [v if f"{MED}.2." not in v[0] else (v[0], "i", "2") for v in mediation_pdu(135)]  # ipv6, 4 octets
    refused(snmp.net.set(*pdu), "inconsistentValue")


def test_unsupported_filter_interfaces(snmp):
    assert snmp.net.set(*mediation_pdu(136)).code == 0
    for interface in ("-1", "-2"):
        pdu = [v if f"{FILTER}.1." not in v[0] else (v[0], "i", interface) for v in filter_pdu(136, 1, src=SUBJECT)]
        refused(snmp.net.set(*pdu), "wrongValue", f"{FILTER}.1.136.1")
    snmp.net.set((f"{MED}.13.136", "i", "6"))


# -- RFC 3416 error statuses ----------------------------------------------------------

@pytest.mark.parametrize("varbind, status", [
    ((f"{MED}.4.140", "i", "7000"), "wrongType"),  # InetPortNumber is Unsigned32
    ((f"{MED}.3.140", "a", "203.0.113.10"), "wrongType"),  # InetAddress is an OCTET STRING, not IpAddress
    ((f"{MED}.13.140", "s", "4"), "wrongType"),
    ((f"{MED}.3.140", "x", "cb00710a00"), "wrongLength"),
    ((f"{MED}.10.140", "x", "07ea0b170b2b36"), "wrongLength"),
    ((f"{FILTER}.15.140.1", "s", "v" * 256), "wrongLength"),
    ((f"{MED}.7.140", "i", "64"), "wrongValue"),
    ((f"{MED}.2.140", "i", "16"), "wrongValue"),  # dns
    ((f"{MED}.4.140", "u", "0"), "wrongValue"),
    ((f"{MED}.10.140", "x", "07ea0d170b2b3600"), "wrongValue"),  # month 13
    ((f"{MED}.13.0", "i", "4"), "noCreation"),  # ContentId 0 can never exist
    ((f"{STREAM}.6.140", "i", "4"), "noCreation"),  # index too short
    ((f"{DEBUG}.5.77", "i", "6"), "noCreation"),  # only the agent creates debug rows
    ((f"{MED}.6.140", "u", "5004"), "notWritable"),  # RtcpPort is read-only
    ((f"{STREAM}.4.140.1", "u", "1"), "notWritable"),
    ((NEW_INDEX, "i", "5"), "notWritable"),
    ((f"{TAP2}.1.1.3.0", "x", "ff"), "notWritable"),
    ((f"{MED}.99.140", "i", "1"), "notWritable"),
    (("1.3.6.1.2.1.1.5.0", "s", "x"), "notWritable"),
])
def test_error_status(snmp, varbind, status):
    refused(snmp.net.set(varbind), status, varbind[0])


def test_duplicate_varbind_is_refused(snmp):
    refused(snmp.net.set((f"{MED}.13.141", "i", "5"), (f"{MED}.13.141", "i", "6")), "inconsistentValue")


def test_error_index_names_the_offending_varbind_and_nothing_changes(snmp):
    pdu = mediation_pdu(142) + [(f"{MED}.7.142", "i", "99")]
    r = snmp.net.set(*pdu)
    assert r.error is not None
    assert r.error == ("inconsistentValue", f"{MED}.7.142") or r.error == ("wrongValue", f"{MED}.7.142")
    assert rows_of(snmp, 142) == {}


def test_many_rows_in_one_pdu_all_or_nothing(snmp):
    """Two intercepts in one PDU; the controller refuses the second (no route to
    its MD): neither is installed and no row of either remains."""
    good = mediation_pdu(143) + filter_pdu(143, 1, src=SUBJECT) + stream_pdu(143, 1)
    bad = mediation_pdu(144, md="198.51.100.99") + filter_pdu(144, 1, src="192.0.2.30") + stream_pdu(144, 1)
    r = snmp.net.set(*good, *bad)
    refused(r, "inconsistentValue")
    assert r.error[1].split(".")[len(MED.split(".")) + 1] == "144" or ".144" in r.error[1]
    assert intercept(snmp, 143) is None and intercept(snmp, 144) is None
    assert rows_of(snmp, 143) == {} and rows_of(snmp, 144) == {}


# -- the tables show the switch ------------------------------------------------------

def wait_until(check, seconds: float = 20.0):
    """Poll `check` until it returns something true (the agent reads the
    switch at most once a second); its last value otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def status_of(net, content_id, stream=1):
    return net.get(f"{STREAM}.6.{content_id}.{stream}").values().get(f"{STREAM}.6.{content_id}.{stream}")


def test_a_filter_entry_deleted_behind_the_agents_back_shows_and_is_put_back(snmp):
    provision(snmp, 146)
    assert status_of(snmp.net, 146) == "INTEGER: 1"
    switch = snmp.controller.switches["s1"]
    key = next(k for k, e in switch.filters.items() if StreamKey(146, 1) in e.streams)
    entity = switch.believed[key].entity
    # Straight to the switch over P4Runtime, past the controller's bookkeeping and the agent's rows.
    with snmp.controller.lock:
        switch.conn.write([p4r.Update(type=p4r.Update.DELETE, entity=entity)])
        assert switch.conn.read([entity]) == []
    assert wait_until(lambda: status_of(snmp.net, 146) == "INTEGER: 2"), \
        "cTap2StreamStatus still active(1) while the switch lacks the stream's filter entry"
    assert intercept(snmp, 146) is not None  # the intent is unchanged: the controller puts it back
    assert wait_until(lambda: status_of(snmp.net, 146) == "INTEGER: 1")
    with snmp.controller.lock:
        assert len(switch.conn.read([entity])) == 1
    assert any(r["action"] == "reconcile" for r in snmp.audit())
    teardown(snmp, 146)


def test_a_dead_switch_shows_in_the_tables_and_sets_fail_changing_nothing(tmp_path):
    from tests.conftest import SWITCH_SKIP_REASON
    if SWITCH_SKIP_REASON is not None:
        pytest.skip(SWITCH_SKIP_REASON)
    with running_switch(tmp_path) as switch:
        controller = switch_controller(tmp_path, switch)
        controller.start()
        running = start_agent(tmp_path, controller, listen='"127.0.0.1:0"')
        try:
            provision(running, 145)
            assert status_of(running.net, 145) == "INTEGER: 1"
            assert running.net.set(*mediation_pdu(147)).code == 0
            assert running.net.set(*filter_pdu(147, 1, src="192.0.2.11")).code == 0
            switch.stop()
            # The rows stay (the intent stands, the controller reconnects when it can), but
            # none reads active while the switch holds nothing; counters keep their last value.
            assert wait_until(lambda: status_of(running.net, 145) == "INTEGER: 2")
            assert running.net.get(f"{STREAM}.7.145.1").values()[f"{STREAM}.7.145.1"].startswith("Counter64: ")
            refused(running.net.set(*stream_pdu(147, 1)), "commitFailed", f"{STREAM}.2.147.1")
            assert intercept(running, 147) is None
            assert "No Such Instance" in running.net.get(f"{STREAM}.6.147.1").out
            # the fault fills the debug table and reaches the audit log
            debug = running.net.walk(DEBUG).values()
            assert any(k.startswith(f"{DEBUG}.4.") and "commitFailed" in v for k, v in debug.items()), debug
            assert any(r["action"] == "snmp-refuse" and r["detail"].get("status") == "commitFailed"
                       for r in running.audit())
        finally:
            running.agent.stop()
            controller.stop()


# -- the debug table ---------------------------------------------------------------------

def test_refusals_fill_the_debug_table_which_the_manager_may_only_destroy(snmp):
    since = len(snmp.audit())
    refused(snmp.net.set(*mediation_pdu(150, md="198.51.100.99"), *filter_pdu(150, 1, src=SUBJECT),
                         *stream_pdu(150, 1)), "inconsistentValue")
    audited = [r for r in snmp.audit()[since:] if r["action"] == "snmp-refuse"]
    assert [r["detail"]["status"] for r in audited] == ["inconsistentValue"], audited
    assert audited[0]["actor"].startswith("snmp:md1 from 127.0.0.1:") and "no route" in audited[0]["detail"]["reason"]
    rows = snmp.net.walk(DEBUG).values()
    mine = [k.rsplit(".", 1)[1] for k, v in rows.items() if k.startswith(f"{DEBUG}.2.") and v == "Gauge32: 150"]
    assert mine, rows
    index = mine[-1]
    message = rows[f"{DEBUG}.4.{index}"]
    assert "no route" in message and "150" in message
    refused(snmp.net.set((f"{DEBUG}.5.{index}", "i", "1")), "wrongValue")
    refused(snmp.net.set((f"{DEBUG}.4.{index}", "s", "x")), "notWritable")
    assert snmp.net.set((f"{DEBUG}.5.{index}", "i", "6")).code == 0
    assert "No Such Instance" in snmp.net.get(f"{DEBUG}.4.{index}").out
    values = snmp.net.get(f"{TAP2}.1.3.1.0", f"{TAP2}.1.3.2.0").values()
    assert values == {f"{TAP2}.1.3.1.0": "INTEGER: 1440", f"{TAP2}.1.3.2.0": "INTEGER: 50"}


# -- the tables show what the controller holds ------------------------------------------------

def test_intercepts_provisioned_through_the_api_appear_and_removals_disappear(snmp):
    m = Mediation(160, ipaddress.ip_address("203.0.113.20"), 7100, timeout=_hour())
    s = Stream(160, 3, IpFilter(InetAddressType.IPV4, dst_address=ipaddress.ip_address(SUBJECT), dst_length=32,
                                protocol=17), True)
    snmp.controller.provision(m, [s], actor="test")
    values = snmp.net.walk(f"{FILTER}.10").values()
    assert values[f"{FILTER}.10.160.3"] == "INTEGER: 17"
    assert snmp.net.get(f"{MED}.13.160").values()[f"{MED}.13.160"] == "INTEGER: 1"
    snmp.controller.remove(160, actor="test")
    assert "No Such Instance" in snmp.net.get(f"{MED}.13.160").out
    assert rows_of(snmp, 160) == {}


def _hour():
    from datetime import datetime, timedelta, timezone
    return datetime.now(timezone.utc) + timedelta(hours=1)


def test_controller_expiry_removes_the_rows(snmp):
    provision(snmp, 161, seconds=2)
    assert intercept(snmp, 161) is not None
    deadline = time.time() + 10
    while time.time() < deadline and rows_of(snmp, 161):
        time.sleep(0.3)
    assert rows_of(snmp, 161) == {}
    assert intercept(snmp, 161) is None


def test_active_mediation_without_streams_ends_at_its_timeout(snmp):
    assert snmp.net.set(*mediation_pdu(162, seconds=2)).code == 0
    deadline = time.time() + 10
    while time.time() < deadline and rows_of(snmp, 162):
        time.sleep(0.3)
    assert rows_of(snmp, 162) == {}
