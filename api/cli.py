"""The ``sdh`` command."""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from adapters.logs import configure_logging
from adapters.settings import Settings
from api.cli_audit import add_audit_commands
from domain.errors import DomainError

log = logging.getLogger("sdh")


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as error:
        raise SystemExit(f"sdh: invalid configuration: {error}") from None


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.bootstrap import build_runtime

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = build_runtime(settings)
    if runtime.admin_token_generated:
        # Printed once, to the terminal that started sdh; kept in the data dir (0600).
        print(
            f"\n  Generated the bootstrap admin token (kept in {settings.data_dir}/admin-token):\n"
            f"\n    {runtime.auth.bootstrap_secret}\n",
            file=sys.stderr,
            flush=True,
        )
    runtime.start()
    backend = "PostgreSQL" if settings.uses_postgres else f"SQLite in {settings.data_dir}"
    log.info(
        "sdh serving",
        extra={"url": f"http://{args.host}:{args.port}", "store": backend},
    )
    app = create_app(runtime=runtime)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    finally:
        runtime.close()
    return 0


def worker(args: argparse.Namespace) -> int:
    from api.bootstrap import ALL_WORKERS, build_runtime

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.only == "relay" and not settings.nats_url:
        print("sdh: the relay needs SDH_NATS_URL (e.g. nats://127.0.0.1:4222)", file=sys.stderr)
        return 2
    runtime = build_runtime(settings)
    workers = frozenset({args.only}) if args.only else ALL_WORKERS
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime.start(workers)
    log.info("sdh worker running", extra={"workers": sorted(workers)})
    stop.wait()
    runtime.close()
    return 0


def token_create(args: argparse.Namespace) -> int:
    from api.bootstrap import build_runtime

    settings = _settings()
    configure_logging("WARNING", settings.log_format)
    runtime = build_runtime(settings)
    try:
        issued = runtime.hub.issue_token(
            args.name, args.role, args.tenant, args.expires_in_days, actor=_cli_actor()
        )
    except DomainError as error:
        print(f"sdh: {error.detail} ({error.code})", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    print(issued.secret)
    return 0


def projections_rebuild(args: argparse.Namespace) -> int:
    from api.bootstrap import build_runtime

    settings = _settings()
    configure_logging("WARNING", settings.log_format)
    runtime = build_runtime(settings)
    try:
        head = runtime.hub.last_position()
        runtime.views.rebuild()
        done = 0
        while handled := runtime.projector.run_once():
            done += handled
            position = runtime.views.position()
            print(f"\rrebuilding read models: {position}/{head} events", end="", file=sys.stderr)
        print(f"\rrebuilt read models from {done} events (position {head}).", file=sys.stderr)
    finally:
        runtime.close()
    return 0


def events_tail(args: argparse.Namespace) -> int:
    from adapters.nats_relay import StreamSettings
    from adapters.nats_tail import run_tail

    settings = _settings()
    stream = StreamSettings(
        settings.nats_stream_max_age_days, settings.nats_duplicate_window_seconds
    )
    return run_tail(settings.nats_url, args.subject, args.from_start, stream)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdh",
        description="Software Distribution Hub. Configuration comes from SDH_* variables "
        "(SDH_DATA_DIR, SDH_DATABASE_URL, SDH_NATS_URL, SDH_ADMIN_TOKEN).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="run the API and the background workers")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=serve)

    p = commands.add_parser("worker", help="run the background workers alone")
    p.add_argument("--only", choices=["projections", "deployer", "relay"])
    p.set_defaults(func=worker)

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True
    )
    p = token.add_parser("create", help="issue a token and print its secret (shown once)")
    p.add_argument("--name", required=True)
    p.add_argument(
        "--role",
        required=True,
        choices=["admin", "release-manager", "deployer", "developer", "viewer", "tenant"],
    )
    p.add_argument("--tenant", help="tenant_id, for a tenant token")
    p.add_argument("--expires-in-days", type=int)
    p.set_defaults(func=token_create)

    projections = commands.add_parser("projections", help="read models").add_subparsers(
        dest="projections_command", required=True
    )
    p = projections.add_parser("rebuild", help="drop every read model and replay the log")
    p.set_defaults(func=projections_rebuild)

    events = commands.add_parser("events", help="published events (NATS)").add_subparsers(
        dest="events_command", required=True
    )
    p = events.add_parser(
        "tail", help="print events live from JetStream (needs SDH_NATS_URL); Ctrl-C stops"
    )
    p.add_argument(
        "--subject", default="sdh.>", help="subject filter, e.g. 'sdh.release.>' (default: all)"
    )
    p.add_argument(
        "--from-start", action="store_true", help="every event the stream holds, then new ones"
    )
    p.set_defaults(func=events_tail)
    add_audit_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
