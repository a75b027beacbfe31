"""md.toml's ETSI handover keys (mediation/etsi_config.py): what they build, and
a one-line error naming the agency and key for each mistake."""

from __future__ import annotations

import pytest

AUTH_KEY = "an-auth-key-of-some-length"


def etsi_table(**overrides) -> dict:
    table = {"name": "lea-a", "cccids": [4242, 4243], "hi3": "127.0.0.1:9003", "hi2": "[::1]:9002",
             "liid": {"4242": "LEA-A-17", "4243": "LEA-A-18"}, "operator_id": "p4tap", "network_element_id": "iap1"}
    table.update(overrides)
    return table


def test_config_builds_the_etsi_agency_with_the_subject_from_its_intercept(tmp_path):
    from mediation.config import parse

    raw = {"iap": {"address": "127.0.0.1:161", "user": "u", "auth_key": AUTH_KEY},
           "intercept": [{"content_id": 4242, "md": "203.0.113.10:7000", "subject": "192.0.2.10"}],
           "agency": [etsi_table(country="NZ", overflow="drop-oldest", spool_max_bytes=1 << 20, keepalive=60)]}
    [spec] = parse(raw, tmp_path).agencies
    agency = spec.etsi
    assert agency.hi3 == ("127.0.0.1", 9003) and agency.hi2 == ("::1", 9002)
    assert agency.liids == {4242: "LEA-A-17", 4243: "LEA-A-18"}
    assert agency.spool_dir == tmp_path / "captures" / "spool" / "lea-a"
    assert (agency.overflow, agency.spool_max_bytes, agency.keepalive, agency.country) == \
        ("drop-oldest", 1 << 20, 60.0, "NZ")
    assert [str(n) for n in agency.targets[4242]] == ["192.0.2.10/32"] and 4243 not in agency.targets


@pytest.mark.parametrize("change,message", [
    ({"liid": {"4242": "LEA-A-17"}}, "no liid for CCCID 4243"),
    ({"liid": {"4242": "LEA-A-17", "4243": "x", "9": "y"}}, "liid keys must be the agency's CCCIDs"),
    ({"liid": {"4242": "L" * 26, "4243": "x"}}, "allows 1..25 octets"),
    ({"network_element_id": "a-name-longer-than-16"}, "network_element_id"),
    ({"overflow": "drop-all"}, "overflow must be one of drop-newest, drop-oldest"),
    ({"keepalive": 0}, "`keepalive` must be positive"),
    ({"hi3": "nowhere"}, "hi3"),
    ({"tcp": "127.0.0.1:1"}, "exactly one of"),
    ({"tls": {"ca": "missing.pem"}}, "is not a file"),
])
def test_etsi_config_mistakes_name_the_agency_and_key(tmp_path, change, message):
    from mediation.config import ConfigError, parse

    with pytest.raises(ConfigError, match=message) as error:
        parse({"agency": [etsi_table(**change)]}, tmp_path)
    assert "lea-a" in str(error.value) and "\n" not in str(error.value)


def test_an_etsi_key_on_another_kind_of_agency_is_refused(tmp_path):
    from mediation.config import ConfigError, parse

    with pytest.raises(ConfigError, match="`liid` belongs to an ETSI handover"):
        parse({"agency": [{"name": "a", "cccids": [1], "udp": "127.0.0.1:1", "liid": {"1": "x"}}]}, tmp_path)
