"""The RFC 2579 RowStatus machine every table of the agent shares, cell by cell."""

from __future__ import annotations

import pytest

from mib_bridge.rowstatus import ROW_STATUS, RowStatus, check_column_write, next_state
from mib_bridge.syntax import SetError
from pysnmp.proto import rfc1902

A, GO, WAIT, ACTIVE, NIS, NR, DESTROY = (None, RowStatus.CREATE_AND_GO, RowStatus.CREATE_AND_WAIT, RowStatus.ACTIVE,
                                         RowStatus.NOT_IN_SERVICE, RowStatus.NOT_READY, RowStatus.DESTROY)
MISSING = ["cTap2MediationTimeout"]


def refused(status: str, *args) -> None:
    with pytest.raises(SetError) as caught:
        next_state(*args)
    assert caught.value.status == status


@pytest.mark.parametrize("current, action, missing, expected", [
    (A, GO, [], ACTIVE),
    (A, WAIT, [], NIS),
    (A, WAIT, MISSING, NR),
    (A, DESTROY, [], None),
    (NR, DESTROY, MISSING, None),
    (NIS, DESTROY, [], None),
    (ACTIVE, DESTROY, [], None),
    (NIS, ACTIVE, [], ACTIVE),
    (ACTIVE, ACTIVE, [], ACTIVE),
    (ACTIVE, NIS, [], NIS),
    (NIS, NIS, [], NIS),
    (NR, None, [], NIS),  # the PDU filled in the last required column
    (NR, None, MISSING, NR),
    (NIS, None, [], NIS),
    (ACTIVE, None, [], ACTIVE),
    (NR, ACTIVE, [], ACTIVE),  # completed and activated in one PDU
])
def test_allowed_transitions(current, action, missing, expected):
    assert next_state(current, action, missing) == expected


@pytest.mark.parametrize("current, action, missing, status", [
    (A, GO, MISSING, "inconsistentValue"),  # createAndGo needs every column without a DEFVAL
    (A, ACTIVE, [], "inconsistentValue"),
    (A, NIS, [], "inconsistentValue"),
    (A, None, [], "inconsistentName"),  # a column of a row nobody creates
    (NR, ACTIVE, MISSING, "inconsistentValue"),
    (NR, NIS, MISSING, "inconsistentValue"),
    (NR, GO, [], "inconsistentValue"),
    (NIS, GO, [], "inconsistentValue"),
    (ACTIVE, WAIT, [], "inconsistentValue"),
])
def test_refused_transitions(current, action, missing, status):
    refused(status, current, action, missing)


@pytest.mark.parametrize("value", [0, 3, 7, -1])
def test_not_ready_and_out_of_range_are_never_written(value):
    with pytest.raises(SetError) as caught:
        ROW_STATUS.decode(rfc1902.Integer32(value))
    assert caught.value.status == "wrongValue"


def test_wrong_type_for_status():
    with pytest.raises(SetError) as caught:
        ROW_STATUS.decode(rfc1902.OctetString(b"\x04"))
    assert caught.value.status == "wrongType"


def test_column_rules_while_active():
    check_column_write(ACTIVE, ACTIVE, "cTap2MediationTimeout", True, writable_while_active=True)
    check_column_write(ACTIVE, NIS, "cTap2MediationDscp", True, writable_while_active=False)
    check_column_write(NIS, ACTIVE, "cTap2MediationDscp", True, writable_while_active=False)
    check_column_write(ACTIVE, ACTIVE, "cTap2MediationDscp", False, writable_while_active=False)  # same value
    with pytest.raises(SetError) as caught:
        check_column_write(ACTIVE, ACTIVE, "cTap2MediationDscp", True, writable_while_active=False)
    assert caught.value.status == "inconsistentValue"
