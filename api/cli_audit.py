"""``sdh audit``: verify the stored history, print its head, replay a release, export."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from application.audit import Head, release_snapshot, verify
from domain.errors import InvalidInputError


def _runtime() -> Any:
    from adapters.logs import configure_logging
    from api.bootstrap import build_runtime
    from api.cli import _settings

    settings = _settings()
    configure_logging("WARNING", settings.log_format)
    if not settings.uses_postgres and not (settings.data_dir / "events.sqlite").exists():
        # Opening would create an empty store there, which then "verifies".
        print(
            f"sdh audit: no sdh store in {settings.data_dir} (set SDH_DATA_DIR or "
            "SDH_DATABASE_URL to the store to audit)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return build_runtime(settings)


def audit_verify(args: argparse.Namespace) -> int:
    """Exit 0: intact. 1: broken (the first bad position is printed). 2: cannot check."""
    kept = None
    try:
        if args.head_file:
            kept = Head.parse(Path(args.head_file).read_text())
        elif args.head:
            kept = Head.parse(args.head)
    except (OSError, ValueError) as error:
        print(f"sdh audit verify: {error}", file=sys.stderr)
        return 2
    try:
        runtime = _runtime()
    except Exception as error:
        print(f"sdh audit verify: cannot open the store: {error}", file=sys.stderr)
        return 2
    try:
        verdict = verify(runtime.hub.iter_notifications(), runtime.chain.links(), kept)
    finally:
        runtime.close()
    if not verdict.ok:
        print(f"BROKEN at position {verdict.broken_at}: {verdict.reason}")
        print(f"  intact up to {verdict.head}", file=sys.stderr)
        return 1
    window = f"; {verdict.unchained} newer event(s) not chained yet" if verdict.unchained else ""
    against = f", matches kept head {kept}" if kept else ""
    print(f"ok: {verdict.checked} events verified, head {verdict.head}{against}{window}")
    return 0


def audit_head(args: argparse.Namespace) -> int:
    runtime = _runtime()
    try:
        head = runtime.chain.head() or Head(0, "")
        behind = runtime.hub.last_position() - head.position
    finally:
        runtime.close()
    if head.position == 0:
        print("sdh audit head: no event is chained yet (is sdh serve running?)", file=sys.stderr)
        return 1
    print(head)
    if behind > 0:
        print(f"({behind} newer event(s) not chained yet)", file=sys.stderr)
    return 0


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def audit_replay(args: argparse.Namespace) -> int:
    try:
        as_of = _as_of(args.as_of)
    except ValueError:
        print(f"sdh audit replay: --as-of {args.as_of!r} is not an ISO-8601 time", file=sys.stderr)
        return 2
    runtime = _runtime()
    try:
        release, events = runtime.hub.release_as_of(args.track, args.version, as_of)
    except InvalidInputError as error:
        print(f"sdh audit replay: {error}", file=sys.stderr)
        return 2
    finally:
        runtime.close()
    if release is None:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        print(
            f"sdh audit replay: release {args.version} of {args.track} did not exist{when}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps({"state": release_snapshot(release), "events": events}, default=str))
        return 0
    for event in events:
        data = json.dumps(event["data"], default=str, separators=(",", ":"))
        print(
            f"{event['timestamp']}  v{event['version']:<4} {event['type']:<28} "
            f"{event['actor']:<20} {data[:160]}"
        )
    state = release_snapshot(release)
    print(f"\nstate{' as of ' + as_of.isoformat() if as_of else ''}:")
    print(json.dumps(state, indent=2, default=str))
    return 0


def audit_export(args: argparse.Namespace) -> int:
    try:
        out = sys.stdout if args.output in (None, "-") else open(args.output, "w")  # noqa: SIM115
    except OSError as error:
        print(f"sdh audit export: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return 2
    runtime = _runtime()
    try:
        head = runtime.hub.last_position()
        after, written = args.after, 0
        while events := runtime.hub.read_events(after, 1000):
            for event in events:
                out.write(json.dumps(event.as_json(), default=str) + "\n")
            written += len(events)
            after = events[-1].position
            if out is not sys.stdout or not sys.stdout.isatty():
                print(
                    f"\rexported {written} events (position {after}/{head})",
                    end="",
                    file=sys.stderr,
                )
        print(f"\rexported {written} events up to position {after}.        ", file=sys.stderr)
    finally:
        if out is not sys.stdout:
            out.close()
        runtime.close()
    return 0


def add_audit_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify, replay and export the history")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    p = sub.add_parser("verify", help="check the stored history against its hash chain")
    p.add_argument("--head", help="a head kept elsewhere (<position>:<link>, from sdh audit head)")
    p.add_argument("--head-file", help="a file holding a kept head")
    p.set_defaults(func=audit_verify)

    p = sub.add_parser("head", help="print the chain head (<position>:<link>) to keep elsewhere")
    p.set_defaults(func=audit_head)

    p = sub.add_parser("replay", help="a release's events and its state, as of a time")
    p.add_argument("--track", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--as-of", help="ISO-8601 time (default: now)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=audit_replay)

    p = sub.add_parser("export", help="the global event log as JSON lines")
    p.add_argument("--after", type=int, default=0, help="start after this position")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=audit_export)
