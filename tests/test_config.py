"""The controller's TOML config: a full file loads into the topology the
planner uses, and each kind of mistake is reported with where it is."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from controller.config import ConfigError, load
from controller.topology import NextHop

GOOD = """
[controller]
state_dir = "state"
control_socket = "ctl.sock"

[[switch]]
name = "access1"
address = "127.0.0.1:9559"
election_id = 7
tap_source_ipv4 = "203.0.113.1"
tap_source_ipv6 = "2001:db8:ff::1"
router_macs = ["02:00:00:00:00:FE"]
vrfs = { red = 7 }
ports = [ { port = 1, ifindex = 101 }, { port = 2, ifindex = 102, vrf = "red" } ]
vlan_vrfs = [ { port = 1, vid = 100, vrf = "red" } ]
l2 = [ { mac = "02:00:00:00:00:01", port = 1 } ]
flood = { group = 1, ports = [1, 2] }
routes = [ { prefix = "203.0.113.10/32", port = 2, src_mac = "02:00:00:00:00:fe", dst_mac = "02:00:00:00:00:04" } ]
"""


def write(tmp_path, text):
    path = tmp_path / "p4tap.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_full_config_loads(tmp_path):
    settings = load(write(tmp_path, GOOD))
    assert settings.store_path == tmp_path / "state" / "intent.db"
    assert settings.control_socket == tmp_path / "ctl.sock"
    (sw,) = settings.switches
    assert (sw.name, sw.address, sw.election_id) == ("access1", "127.0.0.1:9559", (0, 7))
    topo = sw.topology
    assert topo.ingress_port(102) == 2 and topo.port_vrfs == {2: 7} and topo.vlan_vrfs == {(1, 100): 7}
    assert topo.router_macs == ("02:00:00:00:00:fe",)
    assert topo.route_to(ipaddress.ip_address("203.0.113.10")) == NextHop(2, "02:00:00:00:00:fe", "02:00:00:00:00:04")
    assert topo.tap_source(6) == ipaddress.ip_address("2001:db8:ff::1")


@pytest.mark.parametrize("change, message", [
    (('address = "127.0.0.1:9559"', ""), "switch 'access1': missing `address`"),
    (('vrf = "red" }', 'vrf = "blue" }'), "unknown vrf 'blue'"),
    (('prefix = "203.0.113.10/32"', 'prefix = "203.0.113.10/33"'), "routes[0]"),
    (('dst_mac = "02:00:00:00:00:04"', 'dst_mac = "nope"'), "'nope' is not a MAC address"),
    (('tap_source_ipv4 = "203.0.113.1"', 'tap_source_ipv4 = "2001:db8::1"'), "is not IPv4"),
    (("election_id = 7", 'election_id = "7"'), "`election_id` must be int"),
    (("[[switch]]", "[[switch]\n"), "p4tap.toml"),
])
def test_mistakes_are_reported_where_they_are(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(write(tmp_path, GOOD.replace(*change)))


def test_the_lease_is_an_hour_unless_configured(tmp_path):
    """The switch's own enforcement of Timeouts while the controller is away
    (controller/clock.py) lasts `lease_seconds`, within what every target's
    clock compare carries."""
    assert load(write(tmp_path, GOOD)).switches[0].lease.total_seconds() == 3600
    assert load(write(tmp_path, GOOD + "lease_seconds = 600\n")).switches[0].lease.total_seconds() == 600
    for bad in ("1", "70001", "-5"):
        with pytest.raises(ConfigError, match="switch 'access1': lease_seconds must be 2..70000"):
            load(write(tmp_path, GOOD + f"lease_seconds = {bad}\n"))
    with pytest.raises(ConfigError, match="`lease_seconds` must be int"):
        load(write(tmp_path, GOOD + 'lease_seconds = "1h"\n'))


def test_duplicate_switch_names_refused(tmp_path):
    text = GOOD + GOOD[GOOD.index("[[switch]]"):]
    with pytest.raises(ConfigError, match="unique"):
        load(write(tmp_path, text))


ETS_LINE = 'ets = { ports = [1, 2], trusted_ports = [2], rate_bytes = 12500, burst_bytes = 3000, preemptive = true }\n'


def test_ets_settings_load_with_rfc4190_defaults(tmp_path):
    from controller import ets

    cfg = load(write(tmp_path, GOOD + ETS_LINE)).switches[0].topology.ets
    assert cfg.ports == (1, 2) and cfg.trusted_ports == {2}
    assert (cfg.rate_bytes, cfg.burst_bytes, cfg.preemptive) == (12500, 3000, True)
    assert cfg.media_dscp == (ets.EF,) and cfg.signalling_dscp == (ets.AF31,)
    assert load(write(tmp_path, GOOD)).switches[0].topology.ets is None


@pytest.mark.parametrize("change, message", [
    (("trusted_ports = [2]", "trusted_ports = [3]"), "not ETS ports"),
    (("rate_bytes = 12500", "rate_bytes = 0"), "positive rate"),
    (("preemptive = true", "preemptive = 1"), "true or false"),
    (("ports = [1, 2]", "ports = [1, 2], media_dscp = [0]"), "default class"),
    (("ports = [1, 2]", "ports = [1, 2], media_dscp = [46], signalling_dscp = [46]"), "overlap"),
    (("ports = [1, 2]", "ports = [1, 2], media_priority = 3"), "priority queues"),
    (("ports = [1, 2]", "ports = [1, 2], colour = 1"), "unknown keys"),
])
def test_ets_mistakes_are_reported(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, GOOD + ETS_LINE.replace(*change)))


def test_ets_checksum_delta_matches_a_recomputed_checksum():
    """The controller's precomputed RFC 1624 delta, applied as the P4 action
    does, gives the checksum scapy computes from scratch."""
    from scapy.layers.inet import IP

    from controller.ets import csum_delta

    for old, new in ((46 << 2 | 1, 1), (26 << 2, 0), (46 << 2 | 3, 3)):
        for ident in (0, 1, 0x1234, 0xFFFF):
            hc = IP(bytes(IP(src="192.0.2.1", dst="198.51.100.2", tos=old, id=ident))).chksum
            total = (~hc & 0xFFFF) + csum_delta(old, new)
            got = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
            assert got == IP(bytes(IP(src="192.0.2.1", dst="198.51.100.2", tos=new, id=ident))).chksum


def test_one_user_agent_config_is_what_the_agent_loads():
    """The agent config the demo and the benchmarks write parses into one LI
    user at authPriv with informs to the MD, keys quoted as given."""
    import tomllib

    from mib_bridge.config import one_user_toml, parse

    text = one_user_toml(["198.51.100.1:161", "[2001:db8::1]:161"], "md1", 'auth "key" 1234', "priv-key-5678",
                         sys_name="iap-1", notify=["203.0.113.10:162"])
    cfg = parse(tomllib.loads(text))
    assert [str(e) for e in cfg.listen] == ["198.51.100.1:161", "[2001:db8::1]:161"]
    assert cfg.sys_name == "iap-1"
    (user,) = cfg.users
    assert (user.name, user.auth_protocol, user.auth_key, user.priv_protocol, user.priv_key) == (
        "md1", "SHA-256", 'auth "key" 1234', "AES", "priv-key-5678")
    group = cfg.group_of("md1")
    assert group.lawful_intercept and group.security_level == "authPriv"
    assert [(str(n.target), n.user) for n in cfg.notify] == [("203.0.113.10:162", "md1")]


def test_agent_sys_name_defaults_to_the_host_name_not_the_product():
    """RFC 3924 5: nothing an SNMP user can read may say the IAP intercepts;
    sysName, like net-snmp's, is the host's name unless the config gives one."""
    import socket

    from mib_bridge.config import parse

    cfg = parse({"agent": {"listen": ["127.0.0.1:0"]}})
    assert cfg.sys_name == socket.gethostname()
