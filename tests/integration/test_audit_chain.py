"""The audit hash chain against an attacker with write access to the database.

A history is recorded through the hub and chained by the running keeper; then the
database is changed directly with SQL (no sdh code involved) and ``verify`` must name
the first position that no longer matches, and why. Changes that keep the stored chain
consistent (truncating events and links together, or recomputing every link) pass a
plain verify: only a head kept elsewhere exposes them. The keeper itself resumes from
the stored head after a restart, and two keepers sharing one store never interleave.
Runs on SQLite and on PostgreSQL through the ``backend`` parameter.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import Notification

from adapters.audit_store import ChainConflictError
from adapters.settings import Settings
from api.bootstrap import Runtime, build_runtime
from application.audit import GENESIS, AuditChainKeeper, Head, Verdict, next_link, verify
from application.follower import Follower
from tests.conftest import PG_URL

pytestmark = pytest.mark.integration

ACTOR = "audit-test"


def record_history(rt: Runtime, raw: RawStore) -> None:
    """About twenty events of every aggregate kind (on PostgreSQL with a gap in the
    positions, as a rolled-back insert leaves one)."""
    hub = rt.hub
    for env in ("doc1", "doc2", "doc3"):
        hub.register_environment(env, "prod-eu", f"ns-{env}", f"{env} env", ACTOR)
    hub.register_tenant("acme", "Acme", "", ACTOR)
    hub.add_installation("acme", "acme-prod", "Acme Prod", ACTOR)
    hub.map_environments("acme", "acme-prod", ["doc1", "doc2"], ACTOR)
    hub.register_application("payments", "shop", "", ACTOR)
    hub.set_pipeline("payments", "doc1", {}, None, None, ACTOR)
    raw.make_gap()
    hub.register_image("payments", "build", "payments:1", "abc123", ACTOR)
    hub.register_image("payments", "build", "payments:2", "def456", ACTOR, "sha256:" + "ab" * 32)
    hub.create_track("numero", "HRMS", None, ACTOR)
    hub.create_release("numero", "1.0.0", None, "first", None, ACTOR)
    hub.set_stages("numero", "1.0.0", [["payments"]], ACTOR)
    hub.set_release_application("numero", "1.0.0", "payments", "build", "payments:1", None, ACTOR)
    hub.lock_requirements("numero", "1.0.0", ACTOR)
    hub.mark_ready("numero", "1.0.0", ACTOR)
    hub.hold("numero", "1.0.0", "sign-off", ACTOR)
    hub.resume("numero", "1.0.0", "", ACTOR)
    hub.set_notes("numero", "1.0.0", "# Numero 1.0.0", ACTOR)


def wait_until_chained(rt: Runtime, timeout: float = 10.0) -> Head:
    deadline = time.monotonic() + timeout
    while True:
        head = rt.chain.head()
        if head is not None and head.position == rt.hub.last_position():
            return head
        if time.monotonic() > deadline:
            raise AssertionError(f"chain head {head} never reached {rt.hub.last_position()}")
        rt.chain_keeper.wake()
        time.sleep(0.02)


def check(rt: Runtime, kept: Head | None = None) -> Verdict:
    return verify(rt.hub.iter_notifications(), rt.chain.links(), kept)


def positions(rt: Runtime) -> list[int]:
    return [n.id for n in rt.hub.iter_notifications()]


class RawStore:
    """The databases as an attacker sees them: plain SQL, no sdh code."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = settings.database_url is not None
        self.table, self.position = (
            ("sdh_events", "notification_id") if self.postgres else ("stored_events", "rowid")
        )
        self._connections: dict[str, Any] = {}

    def _connect(self, database: str) -> Any:
        """Lazily: the runtime creates the databases."""
        if self.postgres:
            database = "postgres"
        if database not in self._connections:
            if self.postgres:
                conn = psycopg.connect(PG_URL, autocommit=True)
                conn.execute(f'SET search_path TO "{self.settings.database_schema}"')
            else:
                path = self.settings.data_dir / f"{database}.sqlite"
                conn = sqlite3.connect(path, isolation_level=None)
            self._connections[database] = conn
        return self._connections[database]

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()

    def _run(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
        sql = sql.format(table=self.table, position=self.position)
        if not self.postgres:
            sql = sql.replace("%s", "?")
        cursor = conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def events(self, sql: str, *params: Any) -> list[Any]:
        return self._run(self._connect("events"), sql, params)

    def chain(self, sql: str, *params: Any) -> list[Any]:
        return self._run(self._connect("views"), sql, params)

    def make_gap(self) -> None:
        """PostgreSQL positions come from a sequence: a rolled-back insert skips one."""
        if self.postgres:
            self.events("SELECT nextval(pg_get_serial_sequence('sdh_events', 'notification_id'))")

    def row(self, position: int) -> tuple[Any, ...]:
        (row,) = self.events(
            "SELECT originator_id, originator_version, topic, state FROM {table}"
            " WHERE {position} = %s",
            position,
        )
        return (row[0], row[1], row[2], bytes(row[3]))

    def state(self, position: int) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.row(position)[3])
        return loaded

    def set_state(self, position: int, state: dict[str, Any]) -> None:
        encoded = json.dumps(state, separators=(",", ":")).encode()
        self.events("UPDATE {table} SET state = %s WHERE {position} = %s", encoded, position)

    def move(self, source: int, target: int) -> None:
        self.events("UPDATE {table} SET {position} = %s WHERE {position} = %s", target, source)

    def insert(self, position: int, topic: str, state: dict[str, Any]) -> None:
        forged_id: Any = uuid.uuid4()
        if not self.postgres:
            forged_id = forged_id.hex
        self.events(
            "INSERT INTO {table} ({position}, originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, 1, %s, %s)",
            position,
            forged_id,
            topic,
            json.dumps(state, separators=(",", ":")).encode(),
        )


@pytest.fixture
def raw(settings: Settings) -> Iterator[RawStore]:
    store = RawStore(settings)
    yield store
    store.close()


def edit_actor(raw: RawStore, position: int, actor: str = "mallory") -> None:
    state = raw.state(position)
    assert state["actor"] == ACTOR
    raw.set_state(position, {**state, "actor": actor})


# --- the tamperings: each returns (position verify must name, word in its reason) ------


def edit_one_event(raw: RawStore, at: list[int]) -> tuple[int, str]:
    edit_actor(raw, at[7])
    return at[7], "edited"


def delete_one_event(raw: RawStore, at: list[int]) -> tuple[int, str]:
    raw.events("DELETE FROM {table} WHERE {position} = %s", at[5])
    return at[5], "deleted"


def swap_two_events(raw: RawStore, at: list[int]) -> tuple[int, str]:
    raw.move(at[3], -1)
    raw.move(at[12], at[3])
    raw.move(-1, at[12])
    return at[3], "reordered"


def insert_forged_event(raw: RawStore, at: list[int]) -> tuple[int, str]:
    """Into the gap PostgreSQL left; on SQLite (no gaps) in place of a deleted event."""
    forged = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-05T10:00:00+00:00"},
        "originator_topic": "sdh.environment",
        "name": "backdoor",
        "cluster": "",
        "namespace": "",
        "description": "",
        "actor": "mallory",
    }
    topic = "sdh.environment.EnvironmentRegistered"
    if raw.postgres:
        gap = next(p for p in range(at[0], at[-1]) if p not in at)
        raw.insert(gap, topic, forged)
        return gap, "inserted"
    raw.events("DELETE FROM {table} WHERE {position} = %s", at[9])
    raw.insert(at[9], topic, forged)
    return at[9], "differs"


def truncate_events_and_links(raw: RawStore, at: list[int]) -> tuple[int, str]:
    raw.events("DELETE FROM {table} WHERE {position} > %s", at[-4])
    raw.chain("DELETE FROM sdh_audit_chain WHERE position > %s", at[-4])
    return at[-4] + 1, "truncated"


def rewrite_event_and_recompute_chain(raw: RawStore, at: list[int]) -> tuple[int, str]:
    """The strongest attacker: edits an event and recomputes every stored link."""
    edit_actor(raw, at[4])
    raw.chain("DELETE FROM sdh_audit_chain")
    notifications = raw.events(
        "SELECT {position}, originator_id, originator_version, topic, state FROM {table}"
        " ORDER BY {position}"
    )
    link = GENESIS
    for position, originator_id, version, topic, state in notifications:
        stored = Notification(
            id=position,
            originator_id=uuid.UUID(str(originator_id)),
            originator_version=version,
            topic=topic,
            state=bytes(state),
        )
        link = next_link(link, stored)
        raw.chain("INSERT INTO sdh_audit_chain (position, link) VALUES (%s, %s)", position, link)
    return at[-1], "rewritten"


@dataclass(frozen=True)
class Tampering:
    apply: Callable[[RawStore, list[int]], tuple[int, str]]
    # How many events it removed (for the count a plain verify then checks).
    removed: int = 0
    # True when the stored chain was kept consistent: only a kept head exposes it.
    needs_kept_head: bool = False


TAMPERINGS = {
    "edited": Tampering(edit_one_event),
    "deleted": Tampering(delete_one_event),
    "reordered": Tampering(swap_two_events),
    "inserted": Tampering(insert_forged_event),
    "truncated": Tampering(truncate_events_and_links, removed=3, needs_kept_head=True),
    "rewritten": Tampering(rewrite_event_and_recompute_chain, needs_kept_head=True),
}


def test_verify_passes_every_event_when_history_is_untouched(runtime, raw):
    record_history(runtime, raw)
    head = wait_until_chained(runtime)

    verdict = check(runtime)
    assert verdict.ok, verdict
    count = len(positions(runtime))
    assert count >= 20
    assert (verdict.checked, verdict.unchained, verdict.head) == (count, 0, head)
    assert check(runtime, kept=head).ok
    # A head kept earlier still matches the longer history.
    at = positions(runtime)
    earlier = next(link for link in runtime.chain.links() if link.position == at[9])
    assert check(runtime, kept=earlier).ok


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_verify_names_first_bad_position_and_reason_when_database_was_tampered(runtime, raw, name):
    tampering = TAMPERINGS[name]
    record_history(runtime, raw)
    kept = wait_until_chained(runtime)
    at = positions(runtime)
    for follower in runtime.followers:
        follower.stop()

    position, reason = tampering.apply(raw, at)

    plain = check(runtime)
    if tampering.needs_kept_head:
        assert plain.ok, plain
        assert plain.checked == len(at) - tampering.removed
        assert plain.unchained == 0
    else:
        assert not plain.ok
        assert (plain.broken_at, reason in plain.reason) == (position, True), plain
    against_kept = check(runtime, kept=kept)
    assert not against_kept.ok
    assert (against_kept.broken_at, reason in against_kept.reason) == (position, True), against_kept
    if tampering.needs_kept_head:
        # The stored chain itself is consistent: every remaining event was checked.
        assert against_kept.checked == plain.checked
    else:
        # Everything before the first bad position still verified.
        assert against_kept.head.position < position
        assert against_kept.checked == len([p for p in at if p < position])


def test_verify_exposes_edit_only_against_kept_head_when_chain_rows_were_deleted(runtime, raw):
    """Without its links every event looks merely not chained yet (the keeper's window):
    a kept head is what still catches the edit."""
    record_history(runtime, raw)
    kept = wait_until_chained(runtime)
    at = positions(runtime)
    for follower in runtime.followers:
        follower.stop()

    edit_actor(raw, at[2])
    raw.chain("DELETE FROM sdh_audit_chain")

    plain = check(runtime)
    assert (plain.ok, plain.checked, plain.unchained) == (True, 0, len(at))
    against_kept = check(runtime, kept=kept)
    assert (against_kept.ok, against_kept.broken_at) == (False, kept.position)
    assert "rewritten" in against_kept.reason


def test_verify_counts_new_events_as_unchained_when_keeper_has_not_linked_them(runtime, raw):
    record_history(runtime, raw)
    wait_until_chained(runtime)
    for follower in runtime.followers:
        follower.stop()
    runtime.hub.register_environment("late", "", "", "", ACTOR)
    runtime.hub.register_environment("later", "", "", "", ACTOR)
    kept = Head(runtime.hub.last_position(), "0" * 64)

    verdict = check(runtime)
    assert verdict.ok
    assert verdict.unchained == 2
    # A kept head covers unchained events too: a wrong link there is caught.
    wrong = check(runtime, kept=kept)
    assert (wrong.ok, wrong.broken_at) == (False, kept.position)
    assert "rewritten" in wrong.reason


def test_keeper_resumes_from_stored_head_when_runtime_restarts(settings, raw):
    first = build_runtime(settings)
    first.start()
    try:
        record_history(first, raw)
        head = wait_until_chained(first)
        links = list(first.chain.links())
    finally:
        first.close()

    second = build_runtime(settings)
    try:
        assert second.chain_keeper.handler.position() == head.position
        second.start()
        second.hub.register_environment("doc9", "", "", "", ACTOR)
        second.hub.register_tenant("globex", "Globex", "", ACTOR)
        new_head = wait_until_chained(second)
        resumed = list(second.chain.links())
        assert second.chain_keeper.last_error is None
        verdict = check(second, kept=head)
    finally:
        second.close()

    # The links already stored are untouched; only the two new events were appended.
    assert resumed[: len(links)] == links
    assert len(resumed) == len(links) + 2
    assert resumed[-1] == new_head
    assert verdict.ok
    assert verdict.checked == len(resumed)


def test_second_keeper_append_is_refused_and_reloads_head_when_sharing_one_store(settings, raw):
    rt = build_runtime(settings)
    other = build_runtime(settings)  # another process: its own connections
    try:
        record_history(rt, raw)
        notifications = list(rt.hub.iter_notifications())
        mine = AuditChainKeeper(rt.chain)
        theirs = AuditChainKeeper(other.chain)
        assert mine.position() == theirs.position() == 0

        mine.handle(notifications[:6])
        with pytest.raises(ChainConflictError):
            theirs.handle(notifications[:8])
        assert theirs.position() == notifications[5].id
        theirs.handle(notifications[6:])
        with pytest.raises(ChainConflictError):
            mine.handle(notifications[6:10])
        assert mine.position() == notifications[-1].id

        verdict = check(rt)
    finally:
        other.close()
        rt.close()
    assert verdict.ok, verdict
    assert verdict.checked == len(notifications)


def test_racing_keepers_store_one_consistent_chain_when_running_concurrently(settings, raw):
    rt = build_runtime(settings)
    other = build_runtime(settings)
    followers = [
        Follower(
            r.hub,
            AuditChainKeeper(r.chain),
            batch_size=1,
            poll_interval=0.01,
            max_backoff=0.05,
            reader=r.hub.read_notifications,
        )
        for r in (rt, other)
    ]
    try:
        record_history(rt, raw)
        for follower in followers:
            follower.start()
        head = wait_until_chained(rt)
        verdict = check(rt, kept=head)
        count = len(positions(rt))
    finally:
        for follower in followers:
            follower.stop()
        other.close()
        rt.close()
    assert verdict.ok, verdict
    assert verdict.checked == count
