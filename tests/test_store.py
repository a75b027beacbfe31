"""The intent store on real SQLite files: exact round trips, all-or-nothing
writes (including a writer killed with SIGKILL mid-transaction), owner-only
permissions and schema-version refusal."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller import store as store_module
from controller.model import InetAddressType, InterceptError, Interface, IpFilter, Mediation, Stream
from controller.plan import IdAllocator, IdChanges, Replica
from controller.store import SCHEMA_VERSION, IntentStore, StoreError

REPO = Path(__file__).resolve().parents[1]
ip = ipaddress.ip_address
T0 = datetime(2031, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


def mediation(content_id: int = 1, **kw) -> Mediation:
    kw.setdefault("dest_address", ip("203.0.113.10"))
    kw.setdefault("dest_port", 5000)
    kw.setdefault("timeout", T0)
    return Mediation(content_id=content_id, **kw)


MEDIATIONS = [
    mediation(1),
    mediation(2, dest_address=ip("2001:db8:1::10"), dest_port=65535, src_interface=7, dscp=0, timeout=None,
              notification_enable=False, active=False),
    mediation(2**31 - 1, dest_port=1, dscp=63,
              timeout=datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))),
    mediation(4, timeout=datetime(2031, 7, 1, 12, 0, 0, 1, tzinfo=ZoneInfo("Europe/Berlin"))),
]

FILTERS = [
    IpFilter(),  # every wildcard at its MIB default: protocol -1, flow -1, ports 0..65535
    IpFilter(dst_address=ip("192.0.2.77"), dst_length=24, src_address=ip("198.51.100.1"), src_length=32,
             interface=3, tos_byte=0xb8, tos_mask=0xfc, protocol=0, dst_port_min=5060, dst_port_max=5061,
             src_port_min=0, src_port_max=0, vrf="red"),
    IpFilter(addr_type=InetAddressType.IPV6, src_address=ip("2001:db8::1"), src_length=64,
             dst_address=ip("2001:db8:ffff::"), dst_length=128, flow_id=0xFFFFF, protocol=17,
             interface=Interface.ROUTED),
    IpFilter(addr_type=InetAddressType.IPV6, flow_id=0, interface=Interface.VOIP, protocol=255, vrf="vrf-ü"),
]


def streams_for(content_id: int, n: int, tag: int = 0, enabled: bool = True) -> list[Stream]:
    return [Stream(content_id, i, IpFilter(dst_address=ip("192.0.2.1"), dst_length=32, dst_port_min=tag,
                                           dst_port_max=tag), enabled) for i in range(1, n + 1)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "intent.db"


# -- round trips ---------------------------------------------------------------


def test_every_model_field_has_a_column():
    """A model field without a column would be lost on every restart."""
    assert set(store_module.MEDIATION_COLUMNS) == {f.name for f in dataclasses.fields(Mediation)}
    assert set(store_module.FILTER_COLUMNS) == {f.name for f in dataclasses.fields(IpFilter)}
    stream_fields = {f.name for f in dataclasses.fields(Stream)} - {"filter"}
    assert set(store_module.STREAM_COLUMNS) == (stream_fields - {"index"}) | {"stream_index"}


@pytest.mark.parametrize("m", MEDIATIONS, ids=lambda m: f"cid{m.content_id}")
def test_round_trip_every_field_across_reopen(path: Path, m: Mediation):
    streams = [Stream(m.content_id, i, f, enabled=i % 2 == 0) for i, f in enumerate(FILTERS, start=1)]
    with IntentStore(path) as store:
        store.put_intercept(m, streams, ["access-1", "access-0"])
    with IntentStore(path) as store:  # a restart: nothing comes from memory
        got = store.get(m.content_id)
        assert store.all() == [got]
    assert got == (m, streams, ["access-1", "access-0"])
    back, back_streams, _ = got
    # == on datetimes compares instants: check the text-level details too.
    if m.timeout is None:
        assert back.timeout is None
    else:
        assert back.timeout.utcoffset() == m.timeout.utcoffset()
        assert back.timeout.microsecond == m.timeout.microsecond
    assert type(back.dest_address) is type(m.dest_address)
    assert type(back.transport) is type(m.transport)
    assert back.notification_enable is m.notification_enable and back.active is m.active
    for a, b in zip(back_streams, streams):
        assert a.enabled is b.enabled
        assert a.filter.addr_type is b.filter.addr_type
        assert a.filter.dst_address == b.filter.dst_address  # host bits kept as given
        assert (a.filter.protocol, a.filter.flow_id, a.filter.interface) == (
            b.filter.protocol, b.filter.flow_id, b.filter.interface)


def test_streams_come_back_by_index_and_switches_in_given_order(path: Path):
    streams = [Stream(9, i, FILTERS[0]) for i in (5, 1, 3)]
    with IntentStore(path) as store:
        store.put_intercept(mediation(9), streams, ["b", "a", "b", "c"])
        _, got, switches = store.get(9)
    assert [s.index for s in got] == [1, 3, 5]
    assert switches == ["b", "a", "c"]  # duplicates dropped, order kept


def test_default_switch(path: Path):
    with IntentStore(path) as store:
        store.put_intercept(mediation(3), [])
        assert store.get(3) == (mediation(3), [], ["default"])


def test_all_is_ordered_by_content_id(path: Path):
    with IntentStore(path) as store:
        for cid in (30, 5, 17, 2**31 - 1, 1):
            store.put_intercept(mediation(cid), streams_for(cid, 2))
        assert [m.content_id for m, _, _ in store.all()] == [1, 5, 17, 30, 2**31 - 1]
        assert all(len(s) == 2 for _, s, _ in store.all())


def test_content_ids_of_a_switch_are_those_placed_on_it_in_order(path: Path):
    with IntentStore(path) as store:
        for cid, switches in ((30, ["a"]), (5, ["b", "a"]), (17, ["b"]), (2**31 - 1, ["a", "c"])):
            store.put_intercept(mediation(cid), streams_for(cid, 1), switches)
        store.remove_intercept(30)
        assert store.content_ids("a") == [5, 2**31 - 1]
        assert store.content_ids("b") == [5, 17]
        assert store.content_ids("nowhere") == []
        assert store.content_ids("a") == sorted(m.content_id for m, _, sw in store.all() if "a" in sw)


def test_all_follows_every_change_of_intent_whoever_writes_it(path: Path):
    """`all` keeps what it decoded across writes of ids and refusals (they change
    no intercept), and never across a change of intent, from this store or another."""
    with IntentStore(path) as store, IntentStore(path) as other:
        store.put_intercept(mediation(1), streams_for(1, 1), ["s1"])
        before = store.all()
        store.save_ids("s1", IdAllocator({1: 5}))
        store.set_refusals("s1", {1: "full"})
        assert store.all() == before and store.load_ids("s1").replica_ids == {1: 5}
        store.put_intercept(mediation(1), streams_for(1, 2), ["s1"])
        assert [len(s) for _, s, _ in store.all()] == [2]
        other.put_intercept(mediation(2), streams_for(2, 1), ["s1"])
        store.save_ids("s1", IdAllocator({1: 5, 2: 6}))
        assert [m.content_id for m, _, _ in store.all()] == [1, 2]


def test_get_missing_is_none(path: Path):
    with IntentStore(path) as store:
        assert store.get(42) is None
        assert store.all() == []


# -- replacement and removal ---------------------------------------------------


def test_put_replaces_mediation_streams_and_switches(path: Path):
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), streams_for(1, 3), ["a", "b"])
        store.put_intercept(mediation(2), streams_for(2, 2), ["a"])
        new_m = mediation(1, dest_port=6000)
        new_s = [Stream(1, 7, FILTERS[1], True)]
        store.put_intercept(new_m, new_s, ["b"])
        assert store.get(1) == (new_m, new_s, ["b"])
        assert store.get(2) == (mediation(2), streams_for(2, 2), ["a"])  # untouched


def test_remove(path: Path):
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), streams_for(1, 3), ["a", "b"])
        store.put_intercept(mediation(2), streams_for(2, 1))
        assert store.remove_intercept(1) is True
        assert store.remove_intercept(1) is False
        assert store.get(1) is None
        assert [m.content_id for m, _, _ in store.all()] == [2]
    db = sqlite3.connect(path)
    try:  # no orphaned streams or placements left behind
        assert db.execute("SELECT count(*) FROM streams WHERE content_id = 1").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM placements WHERE content_id = 1").fetchone() == (0,)
    finally:
        db.close()


def test_a_write_failing_mid_transaction_changes_nothing(path: Path):
    old = (mediation(1), streams_for(1, 3, tag=1), ["a"])
    with IntentStore(path) as store:
        store.put_intercept(*old)
    db = sqlite3.connect(path)
    # Fail the 4th stream row of any later write, after the mediation row and
    # three streams have gone in.
    db.execute("CREATE TRIGGER fail_4 BEFORE INSERT ON streams WHEN NEW.stream_index = 4 "
               "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    db.commit()
    db.close()
    with IntentStore(path) as store:
        with pytest.raises(StoreError, match="injected failure"):
            store.put_intercept(mediation(1, dest_port=7000), streams_for(1, 6, tag=2), ["b"])
        with pytest.raises(StoreError, match="injected failure"):
            store.put_intercepts([(mediation(2), streams_for(2, 1), ["a"]),
                                  (mediation(3), streams_for(3, 5), ["a"])])
        assert store.all() == [old]
        # ... and the store is still usable afterwards.
        store.put_intercept(mediation(2), streams_for(2, 3), ["a"])
        assert store.get(2) == (mediation(2), streams_for(2, 3), ["a"])


@pytest.mark.parametrize("streams, switches, message", [
    ([Stream(2, 1, IpFilter())], ["a"], "does not belong"),
    ([Stream(1, 1, IpFilter()), Stream(1, 1, IpFilter(protocol=6))], ["a"], "twice"),
    ([], [], "no switch"),
    ([], "a", "sequence of names"),
    ([], [""], "bad switch name"),
])
def test_inconsistent_intercepts_are_refused_before_writing(path: Path, streams, switches, message):
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), streams_for(1, 1), ["x"])
        with pytest.raises(InterceptError, match=message):
            store.put_intercept(mediation(1, dest_port=9), streams, switches)
        assert store.all() == [(mediation(1), streams_for(1, 1), ["x"])]


def test_put_intercepts_is_one_batch(path: Path):
    batch = [(mediation(c), streams_for(c, 2), ["a"]) for c in (3, 1, 2)]
    with IntentStore(path) as store:
        store.put_intercepts(batch)
        assert store.all() == sorted(batch, key=lambda i: i[0].content_id)
        with pytest.raises(InterceptError, match="twice"):
            store.put_intercepts([batch[0], batch[0]])


def test_store_is_usable_from_several_threads(path: Path):
    """The controller's timers and request handlers share one store."""
    errors: list[BaseException] = []

    def worker(base: int) -> None:
        try:
            for cid in range(base, base + 25):
                store.put_intercept(mediation(cid), streams_for(cid, 3))
                assert store.get(cid) is not None
                store.all()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    with IntentStore(path) as store:
        threads = [threading.Thread(target=worker, args=(1 + 100 * t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(store.all()) == 150


def test_closed_store_raises(path: Path):
    store = IntentStore(path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.all()


# -- id allocators ---------------------------------------------------------------


def test_ids_round_trip_per_switch(path: Path):
    s1 = frozenset({Replica(3, 1)})
    s2 = frozenset({Replica(3, 1), Replica(4, 2), Replica(511, 65535)})
    a = IdAllocator({7: 1, 8: 2, 2**31 - 1: 65535}, {s1: 1, s2: 32767})
    b = IdAllocator({7: 5}, {frozenset({Replica(1, 5)}): 9})
    with IntentStore(path) as store:
        store.save_ids("a", a)
        store.save_ids("b", b)
    with IntentStore(path) as store:
        got_a, got_b = store.load_ids("a"), store.load_ids("b")
        empty = store.load_ids("never-saved")
    assert (got_a.replica_ids, got_a.session_ids) == (a.replica_ids, a.session_ids)
    assert (got_b.replica_ids, got_b.session_ids) == (b.replica_ids, b.session_ids)
    assert (empty.replica_ids, empty.session_ids) == ({}, {})
    db = sqlite3.connect(path)
    try:  # session keys as sorted lists of [port, rid]
        (text,) = db.execute("SELECT replicas FROM session_ids WHERE switch = 'a' AND session_id = 32767").fetchone()
    finally:
        db.close()
    assert json.loads(text) == [[3, 1], [4, 2], [511, 65535]]


def test_save_ids_replaces(path: Path):
    with IntentStore(path) as store:
        store.save_ids("a", IdAllocator({1: 1, 2: 2}, {frozenset({Replica(1, 1)}): 1}))
        store.save_ids("a", IdAllocator({2: 2}, {}))
        got = store.load_ids("a")
    assert (got.replica_ids, got.session_ids) == ({2: 2}, {})


def test_save_ids_refuses_a_corrupt_allocator_and_keeps_the_old(path: Path):
    with IntentStore(path) as store:
        store.save_ids("a", IdAllocator({1: 1}))
        with pytest.raises(StoreError, match="nothing changed"):
            store.save_ids("a", IdAllocator({1: 3, 2: 3}))  # one rid for two mediations
        assert store.load_ids("a").replica_ids == {1: 1}


def test_id_changes_follow_the_allocator_including_an_id_that_moves(path: Path):
    """store.change writes only the ids changed since the last save; an id
    freed by one mediation and given to another in between is no collision."""
    ids = IdAllocator()
    s1 = frozenset({Replica(4, ids.replica(1))})
    ids.session(s1)
    ids.replica(2)
    with IntentStore(path) as store:
        store.change(put=[(mediation(1), streams_for(1, 1), ["a"])], ids={"a": ids.take_changes()})
        ids.forget_replica(1)
        ids.forget_session(s1)
        assert ids.replica(3) == 1  # mediation 1's replica id, reused
        store.change(remove=[1], ids={"a": ids.take_changes()})
        got = store.load_ids("a")
        assert (got.replica_ids, got.session_ids) == ({2: 2, 3: 1}, {})
        assert [m.content_id for m, _, _ in store.all()] == []


def test_change_is_one_transaction_intent_and_ids_together(path: Path):
    ids = IdAllocator({1: 1})
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), streams_for(1, 1), ["a"])
        store.save_ids("a", ids)
        bad = IdChanges({9: 1}, {})  # rid 1 is mediation 1's: the UNIQUE constraint refuses it
        with pytest.raises(StoreError, match="nothing changed"):
            store.change(put=[(mediation(2), streams_for(2, 1), ["a"])], remove=[1], ids={"a": bad})
        assert [m.content_id for m, _, _ in store.all()] == [1]
        assert store.load_ids("a").replica_ids == {1: 1}


def test_get_many_reads_the_ones_that_exist(path: Path):
    with IntentStore(path) as store:
        store.put_intercepts([(mediation(c), streams_for(c, 2), ["a"]) for c in range(1, 1200)])
        found = store.get_many([5, 7, 1199, 5000] + list(range(100, 1100)))
        assert set(found) == {5, 7, 1199} | set(range(100, 1100))
        assert found[7] == store.get(7)


# -- files, permissions, schema ---------------------------------------------------


def test_new_store_is_owner_only_in_wal_mode_even_with_a_lax_umask(path: Path):
    old = os.umask(0)
    try:
        with IntentStore(path) as store:
            store.put_intercept(mediation(1), streams_for(1, 1))
            for f in path.parent.iterdir():  # intent.db, -wal and -shm
                assert f.stat().st_mode & 0o777 == 0o600, f
    finally:
        os.umask(old)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_store_readable_by_others_is_refused(path: Path, mode: int):
    IntentStore(path).close()
    os.chmod(path, mode)
    with pytest.raises(StoreError, match=f"chmod 600 {path}"):
        IntentStore(path)
    os.chmod(path, 0o600)
    IntentStore(path).close()


def test_lax_wal_sidecar_is_refused(path: Path):
    IntentStore(path).close()
    wal = path.with_name(path.name + "-wal")
    wal.touch()
    os.chmod(wal, 0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        IntentStore(path)


def test_newer_schema_is_refused(path: Path):
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), [])
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"newer p4tap.*schema {SCHEMA_VERSION + 1}"):
        IntentStore(path)


def test_schema_version_is_recorded(path: Path):
    IntentStore(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()


def test_version_1_store_is_migrated_and_keeps_its_intercepts(path: Path):
    """A store written before refusals were kept (schema 1) opens, gains the
    table and keeps every intercept."""
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), [])
    db = sqlite3.connect(path)
    db.execute("DROP TABLE refusals")
    db.execute("DROP TABLE intent_marks")
    db.execute("UPDATE schema_version SET version = 1")
    db.commit()
    db.close()
    with IntentStore(path) as store:
        assert [m.content_id for m, _, _ in store.all()] == [1]
        store.set_refusals("default", {1: "refused by the switch: full", 2: "no such intercept"})
        assert store.refusals() == {1: {"default": "refused by the switch: full"}}
        store.remove_intercept(1)
        assert store.refusals() == {}
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()


def test_foreign_sqlite_file_is_refused(path: Path):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE something_else (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a p4tap intent store"):
        IntentStore(path)


def test_non_database_file_is_refused(path: Path):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"this is not an SQLite database, it is only text" * 100)
    os.close(fd)
    with pytest.raises(StoreError):
        IntentStore(path)


def test_damaged_row_is_refused_not_trusted(path: Path):
    with IntentStore(path) as store:
        store.put_intercept(mediation(1), streams_for(1, 1))
    db = sqlite3.connect(path)
    db.execute("UPDATE streams SET protocol = 300")
    db.commit()
    db.close()
    with IntentStore(path) as store, pytest.raises(StoreError, match="citapStreamProtocol"):
        store.all()


# -- crash safety -------------------------------------------------------------------

CHILD_PRELUDE = textwrap.dedent("""
    import ipaddress, os, sys, time
    from datetime import datetime, timezone
    from pathlib import Path
    from controller.model import IpFilter, Mediation, Stream
    from controller.store import IntentStore

    def intercept(cid, gen):
        # Everything about generation `gen` is derivable from it, so a reader
        # can tell a whole intercept from a mix of two generations.
        gen %= 60000
        n = 1 + (gen * 7 + cid) % 40
        m = Mediation(cid, ipaddress.ip_address("203.0.113.10"), 1 + gen,
                      timeout=datetime(2031, 1, 1, tzinfo=timezone.utc))
        streams = [Stream(cid, i, IpFilter(dst_address=ipaddress.ip_address("192.0.2.1"), dst_length=32,
                                           dst_port_min=gen, dst_port_max=gen), True)
                   for i in range(1, n + 1)]
        return m, streams, ["sw%d" % (gen % 3), "sw%d" % (gen % 3 + 1)]
""")


def _child(script: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(script), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_whole(store: IntentStore) -> list[int]:
    """Every intercept in the store is exactly one generation's, in full."""
    gens = []
    for m, streams, switches in store.all():
        gen = m.dest_port - 1
        n = 1 + (gen * 7 + m.content_id) % 40
        assert [s.index for s in streams] == list(range(1, n + 1)), f"intercept {m.content_id}: torn streams"
        assert {s.filter.dst_port_min for s in streams} == {gen}, f"intercept {m.content_id}: mixed generations"
        assert switches == [f"sw{gen % 3}", f"sw{gen % 3 + 1}"], f"intercept {m.content_id}: torn placements"
        gens.append(gen)
    return gens


@pytest.mark.parametrize("existing", [True, False], ids=["replace", "new"])
def test_sigkill_inside_the_transaction_leaves_the_old_intent(path: Path, existing: bool):
    """Killed after the mediation and many stream rows are written (and, with a
    one-page cache, spilled into the WAL) but before COMMIT."""
    child = _child("""
        store = IntentStore(Path(sys.argv[1]))
        if sys.argv[2] == "1":
            store.put_intercept(*intercept(1, 5))
        real = store._db

        class Stall:
            # Passes everything to the real connection; after the stream rows
            # are inserted it reports and waits to be killed.
            def __getattr__(self, name):
                return getattr(real, name)
            def execute(self, *a):
                return real.execute(*a)
            def executemany(self, sql, rows):
                result = real.executemany(sql, rows)
                if sql.startswith("INSERT INTO streams"):
                    assert real.in_transaction
                    print("inside", flush=True)
                    time.sleep(60)
                return result

        real.execute("PRAGMA cache_size = 1")
        store._db = Stall()
        m, streams, switches = intercept(1, 6)
        big = [Stream(1, i, streams[0].filter, True) for i in range(1, 3001)]
        store.put_intercept(m, big, switches)
        print("committed", flush=True)
    """, str(path), "1" if existing else "0")
    try:
        assert child.stdout.readline().strip() == "inside", child.stderr.read()
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 0  # uncommitted pages really reached the disk
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    with IntentStore(path) as store:
        if existing:
            assert _assert_whole(store) == [5]
        else:
            assert store.all() == []
        store.put_intercept(mediation(2), streams_for(2, 1))  # and it is writable
        assert store.get(2) is not None


def test_sigkill_at_random_moments_never_tears_an_intercept(path: Path):
    rng = random.Random(20261123)
    seen_gens: set[int] = set()
    for round_ in range(12):
        child = _child("""
            store = IntentStore(Path(sys.argv[1]))
            gen = int(sys.argv[2])
            print("started", flush=True)
            while True:
                gen += 1
                for cid in range(1, 6):
                    store.put_intercept(*intercept(cid, gen))
        """, str(path), str(round_ * 1000))
        try:
            assert child.stdout.readline().strip() == "started", child.stderr.read()
            time.sleep(rng.uniform(0.005, 0.25))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        with IntentStore(path) as store:
            seen_gens.update(_assert_whole(store))
    assert len(seen_gens) > 12  # the writers really got going


def test_all_sees_commits_by_other_connections(path: Path):
    """all() may serve a cached decode, but never a stale one."""
    with IntentStore(path) as a, IntentStore(path) as b:
        a.put_intercept(mediation(1), streams_for(1, 1))
        assert [m.content_id for m, _, _ in a.all()] == [1]
        b.put_intercept(mediation(2), streams_for(2, 1))
        assert [m.content_id for m, _, _ in a.all()] == [1, 2]
        b.remove_intercept(1)
        assert [m.content_id for m, _, _ in a.all()] == [2]
        a.put_intercept(mediation(2, dest_port=7), [])
        assert a.all() == [(mediation(2, dest_port=7), [], ["default"])]
        first = a.all()
        first[0][1].append("caller's own edit")
        first[0][2].clear()
        assert a.all() == [(mediation(2, dest_port=7), [], ["default"])]
    db = sqlite3.connect(path)
    with IntentStore(path) as c:
        c.all()
        db.execute("DELETE FROM mediations")
        db.commit()
        assert c.all() == []
    db.close()
