"""md.toml's [[sip_server]] and an identity target's SIP keys: the standing
signalling tap they make (address and protocol, never a port) and one-line
errors naming the key."""
import pytest

pytest.importorskip("sipmessage")
from mediation.config import ConfigError  # noqa: E402
from tests.test_radius_config import SIGNALLING, _md  # noqa: E402

SIP = """
[signalling]
listen = "203.0.113.10:7001"
[[sip_server]]
address = "198.51.100.70"
content_id = 90002
"""


def test_sip_server_is_a_standing_tap_on_its_address_and_protocols_without_ports():
    config = _md(SIP + '[[identity_target]]\ncontent_id = 4243\nsip_uri = "sip:Alice@Example.TEST"\n'
                       '[[identity_target]]\ncontent_id = 4244\nsip_uri = "tel:+15550100"\n'
                       '[[identity_target]]\ncontent_id = 4245\nsip_user = "carol"\n')
    (tap,) = config.signalling_intercepts()
    assert (tap.content_id, tap.md.host, tap.md.port) == (90002, "203.0.113.10", 7001)
    assert "SIP server 198.51.100.70" in tap.derived_from
    host = "198.51.100.70/32"
    assert [(f.src, f.dst, f.protocol, f.src_ports, f.dst_ports) for f in tap.filters] == [
        (None, host, 17, (0, 65535), (0, 65535)), (host, None, 17, (0, 65535), (0, 65535)),
        (None, host, 6, (0, 65535), (0, 65535)), (host, None, 6, (0, 65535), (0, 65535))]
    alice, tel, carol = config.identity_targets
    assert (alice.sip_user, alice.sip_host, alice.by_radius) == ("Alice", "example.test", False)
    assert alice.identity() == {"sip_uri": "sip:Alice@example.test"}
    assert (tel.sip_user, tel.sip_host) == ("+15550100", None)
    assert (carol.sip_user, carol.sip_host) == ("carol", None)


def test_one_warrant_by_radius_and_sip_and_servers_of_both():
    config = _md(SIGNALLING + SIP.split("\n", 3)[3] + 'transports = ["udp"]\n'
                 '[[identity_target]]\ncontent_id = 4242\nradius_username = "alice"\nsip_user = "alice"\n')
    assert [t.content_id for t in config.signalling_intercepts()] == [90001, 90002]
    assert [f.protocol for f in config.signalling_intercepts()[1].filters] == [17, 17]
    (target,) = config.identity_targets
    assert target.by_radius and target.sip_user == "alice"
    assert target.identity() == {"radius_username": "alice", "sip_uri": "sip:alice@*"}


@pytest.mark.parametrize("extra,message", [
    (SIP.replace('address = "198.51.100.70"', 'address = "sip.example"'), "address"),
    (SIP + 'transports = ["udp", "tls"]\n', "transports"),
    (SIP + 'transports = []\n', "transports"),
    (SIP + 'port = 5060\n', "unknown key"),
    (SIP.replace("content_id = 90002\n", ""), "content_id"),
    (SIP + '[[identity_target]]\ncontent_id = 7\nsip_uri = "alice"\n', "sip_uri"),
    (SIP + '[[identity_target]]\ncontent_id = 7\nsip_uri = "http://x/"\n', "sip_uri"),
    (SIP + '[[identity_target]]\ncontent_id = 7\nsip_uri = "sip:example.test"\n', "sip_uri"),
    (SIP + '[[identity_target]]\ncontent_id = 7\nsip_user = "alice@example.test"\n', "sip_user"),
    (SIP + '[[identity_target]]\ncontent_id = 7\nsip_user = "a"\nsip_uri = "sip:a@b"\n', "not both"),
    (SIP + '[[identity_target]]\ncontent_id = 90002\nsip_user = "a"\n', "must all differ"),
    (SIP + '[[identity_target]]\ncontent_id = 7\nradius_username = "a"\n', "needs a \\[\\[radius_server\\]\\]"),
    (SIGNALLING + '[[identity_target]]\ncontent_id = 7\nsip_user = "a"\n', "needs a \\[\\[sip_server\\]\\]"),
    ('[[sip_server]]\naddress = "198.51.100.70"\ncontent_id = 9\n', "need \\[signalling\\]"),
])
def test_bad_sip_config_is_one_clear_line(extra, message):
    with pytest.raises(ConfigError, match=message) as error:
        _md(extra)
    assert "\n" not in str(error.value)
