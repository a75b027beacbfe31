"""An undo log for in-memory state changed in place.

The controller changes its per-switch state (planner, id allocator, entity
tables) as soon as it works out an intercept's change, because that is
O(what changed); the switch write comes later and may fail, and so may
another switch of the same intercept. Every change is therefore recorded
with its inverse, and `rollback` puts the state back exactly, newest change
first, while `commit` forgets the record once every switch took the change.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

_MISSING = object()
# Undo records: (_MAPPING, mapping, key, previous value or _MISSING) or (_CALL, undo).
_MAPPING, _CALL = 0, 1


class Journal:
    """Recorded inverses of the changes since the last commit or rollback."""

    def __init__(self) -> None:
        self._undo: list[tuple] = []

    def __len__(self) -> int:
        return len(self._undo)

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Record a change made elsewhere by how to reverse it."""
        self._undo.append((_CALL, undo))

    def set(self, mapping: MutableMapping[Any, Any], key: Any, value: Any) -> None:
        self._undo.append((_MAPPING, mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def pop(self, mapping: MutableMapping[Any, Any], key: Any) -> Any:
        previous = mapping.pop(key, _MISSING)
        if previous is _MISSING:
            return None
        self._undo.append((_MAPPING, mapping, key, previous))
        return previous

    def setattr(self, obj: object, name: str, value: Any) -> None:
        self.set(obj.__dict__, name, value)

    def rollback(self) -> None:
        undo, self._undo = self._undo, []
        for record in reversed(undo):
            if record[0] == _CALL:
                record[1]()
            elif record[3] is _MISSING:
                record[1].pop(record[2], None)
            else:
                record[1][record[2]] = record[3]

    def commit(self) -> None:
        self._undo = []
