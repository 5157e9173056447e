"""The auditor's story with ``sdh audit``: real processes on a real data directory.

A release is created and locked through a running ``sdh serve``; the auditor then
exports the log, replays the release as of a moment before the lock, keeps the chain
head, and verifies the stored history: intact as written, and broken at the exact
position once someone edits an event in (a copy of) the database.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, free_port
from tests.helpers import SDH, all_events, ok, sdh_env, start_sdh, stop_sdh, wait_until

pytestmark = pytest.mark.e2e

IMAGE = "registry.example/payments:1.0.0"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def sdh(data_dir: Path, *args: str) -> Ran:
    (ran,) = sdh_together((data_dir, args))
    return ran


def sdh_together(*invocations: tuple[Path, tuple[str, ...]]) -> list[Ran]:
    """Runs independent ``sdh`` commands at the same time (each pays the start-up)."""
    processes = [
        subprocess.Popen(
            [SDH, *args],
            env=sdh_env(data_dir, SDH_ADMIN_TOKEN=ADMIN),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for data_dir, args in invocations
    ]
    ran = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        ran.append(Ran(process.returncode, out, err))
    return ran


@dataclass(frozen=True)
class Story:
    data_dir: Path
    before_lock: datetime
    # GET /events as the server answered, after the lock.
    events: list[dict[str, Any]]
    # What ``sdh audit head`` printed while the server ran: the head an auditor keeps.
    head: Ran


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """numero 1.0.0 created and locked through a running server, which is then stopped
    once the audit chain has linked every event."""
    data_dir = tmp_path_factory.mktemp("audit-cli")
    port = free_port()
    server = start_sdh(sdh_env(data_dir, SDH_ADMIN_TOKEN=ADMIN), port)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
        ) as api:
            ok(api.post("/applications", json={"name": "payments"}), 201)
            image = {"workflow": "build", "image": IMAGE, "commit": "abc123"}
            ok(api.post("/applications/payments/images", json=image), 201)
            ok(api.post("/release-tracks", json={"name": "numero"}), 201)
            ok(api.post("/release-tracks/numero/releases", json={"version": "1.0.0"}), 201)
            release = "/release-tracks/numero/releases/1.0.0"
            ok(api.put(f"{release}/stages", json={"stages": [["payments"]]}))
            chosen = {"workflow": "build", "image": IMAGE}
            ok(api.put(f"{release}/applications/payments", json=chosen))
            time.sleep(0.01)
            before_lock = datetime.now(UTC)
            time.sleep(0.01)
            ok(api.post(f"{release}/lock"))
            events = all_events(api)
            readyz = f"http://127.0.0.1:{port}/readyz"
            wait_until(
                lambda: ok(httpx.get(readyz))["followers"]["audit-chain"]["lag"] == 0,
                what="the audit chain to catch up",
            )
        head = sdh(data_dir, "audit", "head")
    finally:
        stop_sdh(server)
    return Story(data_dir, before_lock, events, head)


REPLAY = ("audit", "replay", "--track", "numero", "--version", "1.0.0")


def test_export_writes_every_event_as_ordered_json_lines_when_given_a_file(story, tmp_path):
    out = tmp_path / "events.jsonl"
    middle = story.events[3]["position"]

    result, after = sdh_together(
        (story.data_dir, ("audit", "export", "-o", str(out))),
        (story.data_dir, ("audit", "export", "--after", str(middle))),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(story.events) == 7
    assert lines == story.events
    keys = {"position", "id", "type", "aggregate_id", "version", "timestamp", "actor", "data"}
    assert all(keys <= set(line) for line in lines)
    positions = [line["position"] for line in lines]
    assert positions == sorted(set(positions))
    assert lines[-1]["type"] == "RequirementsLocked"
    assert f"exported {len(lines)} events up to position {positions[-1]}" in result.stderr
    # Without -o, to standard output; --after resumes an earlier export.
    assert [json.loads(line) for line in after.stdout.splitlines()] == lines[4:]


def test_replay_shows_release_unlocked_when_as_of_precedes_lock(story):
    then, now, text = sdh_together(
        (story.data_dir, (*REPLAY, "--as-of", story.before_lock.isoformat(), "--json")),
        (story.data_dir, (*REPLAY, "--json")),
        (story.data_dir, (*REPLAY, "--as-of", story.before_lock.isoformat())),
    )

    assert then.returncode == now.returncode == text.returncode == 0, then.stderr + now.stderr
    earlier, latest = json.loads(then.stdout), json.loads(now.stdout)
    assert earlier["state"]["locked"] is False
    assert latest["state"]["locked"] is True
    types = [e["type"] for e in latest["events"]]
    assert types[-1] == "RequirementsLocked"
    assert [e["type"] for e in earlier["events"]] == types[:-1]
    assert earlier["state"]["stages"][0][0]["image"] == IMAGE
    # The readable form: one line per event, then the state as of that time.
    assert "ReleaseCreated" in text.stdout
    assert "RequirementsLocked" not in text.stdout
    assert f"state as of {story.before_lock.isoformat()}:" in text.stdout
    assert '"locked": false' in text.stdout


def test_replay_exits_1_when_release_did_not_exist_then(story):
    result = sdh(story.data_dir, *REPLAY, "--as-of", "2000-01-01T00:00:00")

    assert result.returncode == 1
    assert "did not exist as of 2000-01-01T00:00:00+00:00" in result.stderr
    assert result.stdout == ""


def test_replay_exits_2_without_traceback_when_input_is_invalid(story):
    bad_time, bad_track = sdh_together(
        (story.data_dir, (*REPLAY, "--as-of", "last tuesday")),
        (story.data_dir, ("audit", "replay", "--track", "Bad Name", "--version", "1.0.0")),
    )

    assert bad_time.returncode == 2
    assert "--as-of 'last tuesday' is not an ISO-8601 time" in bad_time.stderr
    assert bad_track.returncode == 2
    assert "sdh audit replay: track 'Bad Name' must match" in bad_track.stderr
    assert "Traceback" not in bad_time.stderr + bad_track.stderr


def test_head_prints_position_and_link_of_last_event_when_chain_caught_up(story):
    assert story.head.returncode == 0, story.head.stderr
    match = re.fullmatch(r"(\d+):([0-9a-f]{64})\n", story.head.stdout)
    assert match, story.head.stdout
    assert int(match[1]) == story.events[-1]["position"]
    assert story.head.stderr == ""


def test_verify_exits_1_naming_position_when_an_event_was_edited_in_a_copy(story, tmp_path):
    kept = story.head.stdout.strip()
    copy = tmp_path / "copy"
    shutil.copytree(story.data_dir, copy)
    tampered = story.events[2]["position"]
    db = sqlite3.connect(copy / "events.sqlite", isolation_level=None)
    try:
        (state,) = db.execute(
            "SELECT state FROM stored_events WHERE rowid = ?", (tampered,)
        ).fetchone()
        forged = json.dumps({**json.loads(state), "actor": "nobody"}, separators=(",", ":"))
        db.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?", (forged.encode(), tampered)
        )
    finally:
        db.close()

    broken, broken_with_head, intact = sdh_together(
        (copy, ("audit", "verify")),
        (copy, ("audit", "verify", "--head", kept)),
        (story.data_dir, ("audit", "verify")),
    )

    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN at position {tampered}: ")
    assert f"intact up to {tampered - 1}:" in broken.stderr
    assert broken_with_head.returncode == 1
    assert broken_with_head.stdout.startswith(f"BROKEN at position {tampered}: ")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.startswith(f"ok: {len(story.events)} events verified")


def test_verify_exits_0_when_history_matches_kept_head(story, tmp_path):
    kept = story.head.stdout.strip()
    head_file = tmp_path / "head.txt"
    head_file.write_text(kept + "\n")

    given, from_file = sdh_together(
        (story.data_dir, ("audit", "verify", "--head", kept)),
        (story.data_dir, ("audit", "verify", "--head-file", str(head_file))),
    )

    assert given.returncode == 0, given.stdout + given.stderr
    assert f"matches kept head {kept}" in given.stdout
    assert from_file.returncode == 0, from_file.stdout + from_file.stderr
    assert f"matches kept head {kept}" in from_file.stdout


@pytest.mark.parametrize("head", ["abc", "7:" + "0" * 63, "7:" + "z" * 64, "-1:" + "0" * 64])
def test_verify_exits_2_when_kept_head_is_malformed(story, head):
    result = sdh(story.data_dir, "audit", "verify", "--head", head)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "sdh audit verify:" in result.stderr
