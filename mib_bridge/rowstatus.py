"""RFC 2579 RowStatus: the one state machine every writable table here uses.

States of a conceptual row: it does not exist (None), notReady (a column
without a default is still unset), notInService, active. A SET moves a row by
the value it writes to the status column (the action), or, without one, by
the columns it fills in. The table of RFC 2579 section "RowStatus", with the
choices this agent makes where it leaves one:

    action          does not exist        notReady           notInService   active
    createAndGo     active, or            inconsistentValue  inconsistentValue
                    inconsistentValue
                    if a column is missing
    createAndWait   notReady/notInService inconsistentValue  inconsistentValue
    active          inconsistentValue     inconsistentValue  active         active
                                          (unless this PDU completes the row)
    notInService    inconsistentValue     inconsistentValue  notInService   notInService
                                          (same)
    destroy         (nothing)             gone               gone           gone
    columns only    inconsistentName      notReady or        notInService   active
                                          notInService

notReady(3) is a state, never an action: writing it is wrongValue. In an
active row only the columns a table names may change (the others need
notInService first, in this PDU or an earlier one); rewriting a column with
the value it already has is always accepted.
"""

from __future__ import annotations

import enum
from collections.abc import Collection

from mib_bridge.syntax import Integer, SetError


class RowStatus(enum.IntEnum):
    ACTIVE = 1
    NOT_IN_SERVICE = 2
    NOT_READY = 3
    CREATE_AND_GO = 4
    CREATE_AND_WAIT = 5
    DESTROY = 6


#: The syntax of a status column: any RowStatus value but notReady may be written.
ROW_STATUS = Integer(1, 6, allowed=frozenset({1, 2, 4, 5, 6}))


def next_state(current: RowStatus | None, action: RowStatus | None, missing: Collection[str]) -> RowStatus | None:
    """The row's state after a SET. `missing`: required columns still without a
    value once the PDU's columns are applied. Raises SetError when RFC 2579
    refuses the transition."""
    if action == RowStatus.DESTROY:
        return None
    if current is None:
        if action == RowStatus.CREATE_AND_GO:
            if missing:
                raise SetError("inconsistentValue", f"createAndGo without {', '.join(missing)}")
            return RowStatus.ACTIVE
        if action == RowStatus.CREATE_AND_WAIT:
            return RowStatus.NOT_READY if missing else RowStatus.NOT_IN_SERVICE
        if action is None:
            raise SetError("inconsistentName", "the row does not exist: create it with createAndGo or createAndWait")
        raise SetError("inconsistentValue", f"the row does not exist, so it cannot be {action.name}")
    if action in (RowStatus.CREATE_AND_GO, RowStatus.CREATE_AND_WAIT):
        raise SetError("inconsistentValue", "the row already exists")
    if action in (RowStatus.ACTIVE, RowStatus.NOT_IN_SERVICE):
        if missing:
            raise SetError("inconsistentValue", f"the row is notReady: {', '.join(missing)} not set")
        return action
    assert action is None
    if current == RowStatus.NOT_READY:
        return RowStatus.NOT_READY if missing else RowStatus.NOT_IN_SERVICE
    return current


def check_column_write(before: RowStatus | None, after: RowStatus | None, column: str, changed: bool,
                       writable_while_active: bool) -> None:
    """A column written in this PDU: may it change, given the row's states?"""
    if not changed or after is None or writable_while_active:
        return
    if before == RowStatus.ACTIVE and after == RowStatus.ACTIVE:
        raise SetError("inconsistentValue", f"{column} may change only while the row is notInService")
