"""The hub: one event-sourced application owning every aggregate of sdh.

Its notification log is the single, totally ordered history that auditors replay,
projections follow, the deployer reacts to and the relay publishes. Every use case
loads the aggregates it needs, lets them decide, and saves them in one atomic
``save``; the store's version check turns any concurrent write into a conflict,
which is retried from a fresh load a few times before being reported.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import jsonschema
import referencing.jsonschema
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Notification
from eventsourcing.utils import Environment as LibraryEnvironment
from jsonschema_specifications import REGISTRY as META_SCHEMAS
from referencing import Registry
from referencing.exceptions import Unresolvable

from application.log import RecordedEvent, decode, event_fields, event_id
from application.ports import Clock, SystemClock
from application.secrets import hash_token, new_token_secret
from domain.access import ApiToken, parse_role
from domain.application import Application as App
from domain.environment import Environment
from domain.errors import (
    CatalogDataInvalidError,
    ConcurrentModificationError,
    DeploymentFinishedError,
    DeploymentRefusedError,
    DuplicateError,
    InvalidCatalogSchemaError,
    InvalidInputError,
    NotFoundError,
    StageGateError,
)
from domain.ids import check_name, check_semver, check_tenant_id
from domain.release import Release
from domain.rollout import PHASES, Rollout, parse_deployment_id
from domain.tenant import Tenant
from domain.track import ReleaseTrack

log = logging.getLogger("sdh.hub")

T = TypeVar("T", bound=Aggregate)


def catalog_validator(schema: dict[str, Any]) -> Any:
    """A validator whose ``$ref``s resolve only within the schema and the standard
    meta-schemas: a track's schema must never make sdh fetch a URL."""
    return jsonschema.validators.validator_for(schema)(schema, registry=Registry())


def check_catalog_schema(schema: dict[str, Any]) -> None:
    """A valid JSON Schema whose every ``$ref`` resolves, or InvalidCatalogSchemaError."""
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        specification = referencing.jsonschema.specification_with(
            str(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id") or "urn:unknown-dialect"),
            default=referencing.Specification.OPAQUE,
        )
        root = specification.create_resource(schema)
        _check_refs(META_SCHEMAS.resolver_with_root(root), root)
    except jsonschema.SchemaError as e:
        raise InvalidCatalogSchemaError(
            f"catalog_schema is not a valid JSON Schema: {e.message}"
        ) from None
    except Unresolvable as e:
        raise InvalidCatalogSchemaError(
            f"catalog_schema has a $ref that does not resolve within it: {e}"
        ) from None
    except RecursionError:
        raise InvalidCatalogSchemaError("catalog_schema is nested too deeply") from None


def _check_refs(resolver: Any, resource: Any) -> None:
    contents = resource.contents
    if isinstance(contents, dict) and isinstance(contents.get("$ref"), str):
        resolver.lookup(contents["$ref"])
    for sub in resource.subresources():
        _check_refs(resolver.in_subresource(sub), sub)


MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    """What a command did: the log position of its last event (0 when it changed
    nothing), so callers can wait for read models to pass it."""

    position: int
    changed: bool


@dataclass(frozen=True)
class IssuedToken:
    name: str
    role: str
    tenant_id: str | None
    secret: str
    expires_at: str | None
    position: int


@dataclass(frozen=True)
class QueuedDeployment:
    id: str
    installation_id: str
    application: str
    phase: str
    status: str = "queued"


@dataclass(frozen=True)
class DeploymentBatch:
    position: int
    deployments: list[QueuedDeployment]


@dataclass(frozen=True)
class DeploymentTask:
    """What a deploy adapter needs to carry out one deployment."""

    id: str
    track: str
    semver: str
    tenant_id: str
    installation_id: str
    application: str
    phase: str
    image: str
    environments: list[dict[str, Any]]


@dataclass(frozen=True)
class DeploymentOutcome:
    id: str
    succeeded: bool
    message: str


@dataclass
class _Target:
    tenant_id: str
    # application -> [{environment, cluster, namespace, pipeline}]
    applications: dict[str, list[dict[str, Any]]]


PHASE_KEYS = {"pre": "pre_deploy", "deploy": "target", "post": "post_deploy"}


class Hub(Application[UUID]):
    name = "sdh"
    # Rollouts of big releases make long streams; snapshots keep loading them cheap.
    snapshotting_intervals = {Release: 200, App: 200, Tenant: 200, Rollout: 100}

    def __init__(self, env: Mapping[str, str], clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        super().__init__(env=dict(env))

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> LibraryEnvironment:
        # Only the settings we pass: the library would otherwise read the process environment.
        merged = dict(type(self).env)
        if type(self).snapshotting_intervals:
            merged["IS_SNAPSHOTTING_ENABLED"] = "y"
        merged.update(env or {})
        return LibraryEnvironment(name, merged)

    # --- plumbing -------------------------------------------------------------------

    def _load(self, cls: type[T], aggregate_id: UUID, what: str) -> T:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(f"{what} not found") from None
        if not isinstance(aggregate, cls):  # pragma: no cover - ids are namespaced per kind
            raise NotFoundError(f"{what} not found")
        return aggregate

    def _load_or_none(self, cls: type[T], aggregate_id: UUID) -> T | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(aggregate, cls)
        return aggregate

    def _exists(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    def _execute(self, command: Callable[[], Iterable[Aggregate | None]]) -> Outcome:
        """Runs ``command`` (load, decide) and saves what it returns in one transaction.

        A conflict means someone else wrote one of the aggregates since we loaded it:
        run the command again on fresh state, so its rules see what the winner did.
        """
        for attempt in range(MAX_ATTEMPTS):
            aggregates = [a for a in command() if a is not None]
            if not any(a.pending_events for a in aggregates):
                return Outcome(position=0, changed=False)
            try:
                recordings = self.save(*aggregates)
            except IntegrityError:
                log.info("conflict on save, retrying", extra={"attempt": attempt + 1})
                # Jitter, so writers that collided do not collide again in lockstep.
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
                continue
            return Outcome(position=recordings[-1].notification.id, changed=True)
        raise ConcurrentModificationError(
            "another request changed the same objects at the same time; retry"
        )

    def _create(self, factory: Callable[[], T], what: str) -> Outcome:
        def command() -> list[Aggregate]:
            aggregate = factory()
            if self._exists(aggregate.id):
                raise DuplicateError(f"{what} already exists")
            return [aggregate]

        return self._execute(command)

    # --- reading the log ------------------------------------------------------------

    def read_events(self, after: int, limit: int) -> list[RecordedEvent]:
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return [decode(n, self.mapper) for n in notifications]

    def read_notifications(self, after: int, limit: int) -> Sequence[Notification]:
        """Stored events exactly as stored (for the audit chain)."""
        return self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )

    def iter_notifications(self, batch: int = 5000) -> Iterator[Notification]:
        after = 0
        while notifications := self.read_notifications(after, batch):
            yield from notifications
            after = notifications[-1].id

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    # --- platform catalog -------------------------------------------------------------

    def register_environment(
        self, name: str, cluster: str, namespace: str, description: str, actor: str
    ) -> Outcome:
        return self._create(
            lambda: Environment.register(name, cluster, namespace, description, actor),
            f"environment {name!r}",
        )

    def register_application(
        self, name: str, project: str, description: str, actor: str
    ) -> Outcome:
        return self._create(
            lambda: App.register(name, project, description, actor), f"application {name!r}"
        )

    def get_application(self, name: str) -> App:
        check_name(name, "application")
        return self._load(App, App.create_id(name), f"application {name!r}")

    def get_environment(self, name: str) -> Environment:
        check_name(name, "environment")
        return self._load(Environment, Environment.create_id(name), f"environment {name!r}")

    def set_pipeline(
        self,
        application: str,
        environment: str,
        target: dict[str, Any],
        pre_deploy: dict[str, Any] | None,
        post_deploy: dict[str, Any] | None,
        actor: str,
    ) -> Outcome:
        def command() -> list[Aggregate]:
            app = self.get_application(application)
            self.get_environment(environment)
            app.set_pipeline(environment, target, pre_deploy, post_deploy, actor)
            return [app]

        return self._execute(command)

    def register_image(
        self,
        application: str,
        workflow: str,
        image: str,
        commit: str,
        actor: str,
        digest: str | None = None,
    ) -> Outcome:
        def command() -> list[Aggregate]:
            app = self.get_application(application)
            app.register_image(workflow, image, commit, actor, digest)
            return [app]

        return self._execute(command)

    # --- tenants ----------------------------------------------------------------------

    def get_tenant(self, tenant_id: str) -> Tenant:
        check_tenant_id(tenant_id)
        return self._load(Tenant, Tenant.create_id(tenant_id), f"tenant {tenant_id!r}")

    def register_tenant(
        self, tenant_id: str, display_name: str, description: str, actor: str
    ) -> Outcome:
        return self._create(
            lambda: Tenant.register(tenant_id, display_name, description, actor),
            f"tenant {tenant_id!r}",
        )

    def change_tenant(
        self, tenant_id: str, display_name: str | None, description: str | None, actor: str
    ) -> Outcome:
        def command() -> list[Aggregate]:
            tenant = self.get_tenant(tenant_id)
            tenant.change_details(display_name, description, actor)
            return [tenant]

        return self._execute(command)

    def add_installation(
        self, tenant_id: str, installation_id: str, display_name: str, actor: str
    ) -> Outcome:
        def command() -> list[Aggregate]:
            tenant = self.get_tenant(tenant_id)
            reservation = tenant.add_installation(installation_id, display_name, actor)
            if self._exists(reservation.id):
                raise DuplicateError(f"installation {installation_id!r} already exists")
            return [tenant, reservation]

        return self._execute(command)

    def map_environments(
        self, tenant_id: str, installation_id: str, environments: Sequence[str], actor: str
    ) -> Outcome:
        def command() -> list[Aggregate]:
            tenant = self.get_tenant(tenant_id)
            wanted = [self.get_environment(name) for name in dict.fromkeys(environments)]
            installation = tenant.installations.get(installation_id)
            current_names = installation["environments"] if installation else []
            currently_mapped = [self.get_environment(n) for n in current_names]
            changed = tenant.map_environments(installation_id, wanted, currently_mapped, actor)
            return [tenant, *changed]

        return self._execute(command)

    # --- release tracks and releases --------------------------------------------------

    def get_track(self, name: str) -> ReleaseTrack:
        check_name(name, "track")
        return self._load(ReleaseTrack, ReleaseTrack.create_id(name), f"release track {name!r}")

    def get_release(self, track: str, semver: str) -> Release:
        check_name(track, "track")
        try:
            check_semver(semver)
        except Exception:
            raise NotFoundError(f"release {semver!r} of track {track!r} not found") from None
        return self._load(
            Release, Release.create_id(track, semver), f"release {semver!r} of track {track!r}"
        )

    def create_track(
        self, name: str, description: str, catalog_schema: dict[str, Any] | None, actor: str
    ) -> Outcome:
        if catalog_schema is not None:
            check_catalog_schema(catalog_schema)
        return self._create(
            lambda: ReleaseTrack.create(name, description, catalog_schema, actor),
            f"release track {name!r}",
        )

    def create_release(
        self,
        track: str,
        semver: str,
        name: str | None,
        description: str,
        clone_from: str | None,
        actor: str,
    ) -> Outcome:
        def command() -> list[Aggregate]:
            self.get_track(track)
            if clone_from is not None:
                source = self.get_release(track, clone_from)
                release = Release.clone(source, semver, name, description, actor)
            else:
                release = Release.create(track, semver, name, description, actor)
            if self._exists(release.id):
                raise DuplicateError(f"release {semver!r} already exists in track {track!r}")
            return [release]

        return self._execute(command)

    def _change_release(self, track: str, semver: str, change: Callable[[Release], Any]) -> Outcome:
        def command() -> list[Aggregate]:
            release = self.get_release(track, semver)
            change(release)
            return [release]

        return self._execute(command)

    def set_stages(
        self, track: str, semver: str, stages: Sequence[Sequence[str]], actor: str
    ) -> Outcome:
        def command() -> list[Aggregate]:
            release = self.get_release(track, semver)
            missing = [
                app for stage in stages for app in stage if not self._exists(App.create_id(app))
            ]
            if missing:
                raise NotFoundError(
                    f"no such application: {', '.join(missing)}", applications=missing
                )
            release.set_stages(stages, actor)
            return [release]

        return self._execute(command)

    def set_release_application(
        self,
        track: str,
        semver: str,
        application: str,
        workflow: str | None,
        image: str | None,
        instructions: str | None,
        actor: str,
    ) -> Outcome:
        def command() -> list[Aggregate]:
            release = self.get_release(track, semver)
            app = self.get_application(application)
            release.set_application_requirements(app, workflow, image, instructions, actor)
            return [release]

        return self._execute(command)

    def lock_requirements(self, track: str, semver: str, actor: str) -> Outcome:
        return self._change_release(track, semver, lambda r: r.lock_requirements(actor))

    def unlock_requirements(self, track: str, semver: str, actor: str) -> Outcome:
        return self._change_release(track, semver, lambda r: r.unlock_requirements(actor))

    def _targets(self, release: Release) -> dict[str, _Target]:
        """Every installation one of the release's applications has a pipeline to, with
        the environments each application deploys to there; from the aggregates."""
        targets: dict[str, _Target] = {}
        environments: dict[str, Environment] = {}
        for name in release.applications:
            app = self.get_application(name)
            for env_name, pipeline in sorted(app.pipelines.items()):
                if env_name not in environments:
                    environments[env_name] = self.get_environment(env_name)
                env = environments[env_name]
                if env.installation is None:
                    continue
                target = targets.setdefault(
                    env.installation["installation_id"],
                    _Target(env.installation["tenant_id"], {}),
                )
                target.applications.setdefault(name, []).append(
                    {
                        "environment": env.name,
                        "cluster": env.cluster,
                        "namespace": env.namespace,
                        "pipeline": pipeline,
                    }
                )
        return targets

    def targeted_installations(self, release: Release) -> set[tuple[str, str]]:
        """(tenant_id, installation_id) of every installation the release targets."""
        return {(t.tenant_id, i) for i, t in self._targets(release).items()}

    def mark_ready(self, track: str, semver: str, actor: str) -> Outcome:
        def command() -> list[Aggregate]:
            release = self.get_release(track, semver)
            release.mark_ready(len(self.targeted_installations(release)), actor)
            return [release]

        return self._execute(command)

    def hold(self, track: str, semver: str, reason: str, actor: str) -> Outcome:
        return self._change_release(track, semver, lambda r: r.hold(reason, actor))

    def resume(self, track: str, semver: str, reason: str, actor: str) -> Outcome:
        return self._change_release(track, semver, lambda r: r.resume(reason, actor))

    def rescind(self, track: str, semver: str, reason: str, actor: str) -> Outcome:
        return self._change_release(track, semver, lambda r: r.rescind(reason, actor))

    def set_notes(self, track: str, semver: str, markdown: str, actor: str) -> Outcome:
        return self._change_release(track, semver, lambda r: r.set_notes(markdown, actor))

    def set_catalog(self, track: str, semver: str, data: Any, actor: str) -> Outcome:
        def command() -> list[Aggregate]:
            release = self.get_release(track, semver)
            schema = self.get_track(track).catalog_schema
            if schema is not None:
                validator = catalog_validator(schema)
                try:
                    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
                except (Unresolvable, RecursionError) as e:
                    raise InvalidCatalogSchemaError(
                        f"the track's catalog_schema cannot be applied: {type(e).__name__}"
                    ) from None
                if errors:
                    raise CatalogDataInvalidError(
                        "catalog data breaks the track's catalog_schema: "
                        + "; ".join(
                            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}"
                            for e in errors[:10]
                        ),
                        errors=[{"path": list(e.path), "message": e.message} for e in errors[:50]],
                    )
            release.set_catalog(data, actor)
            return [release]

        return self._execute(command)

    # --- tokens -----------------------------------------------------------------------

    def issue_token(
        self,
        name: str,
        role: str,
        tenant_id: str | None,
        expires_in_days: int | None,
        actor: str,
    ) -> IssuedToken:
        parsed_role = parse_role(role)
        secret = new_token_secret()
        expires_at = (
            (self.clock.now() + timedelta(days=expires_in_days)).isoformat()
            if expires_in_days is not None
            else None
        )

        def command() -> list[Aggregate]:
            if tenant_id is not None:
                self.get_tenant(tenant_id)
            token_id = ApiToken.create_id(name)
            if self._exists(token_id):
                token = self._load(ApiToken, token_id, f"token {name!r}")
                token.reissue(parsed_role, tenant_id, hash_token(secret), expires_at, actor)
                return [token]
            return [
                ApiToken.issue(name, parsed_role, tenant_id, hash_token(secret), expires_at, actor)
            ]

        outcome = self._execute(command)
        return IssuedToken(
            name=name,
            role=parsed_role.value,
            tenant_id=tenant_id,
            secret=secret,
            expires_at=expires_at,
            position=outcome.position,
        )

    def revoke_token(self, name: str, actor: str) -> Outcome:
        def command() -> list[Aggregate]:
            check_name(name, "token")
            token = self._load(ApiToken, ApiToken.create_id(name), f"token {name!r}")
            token.revoke(actor)
            return [token]

        return self._execute(command)

    # --- audit ------------------------------------------------------------------------

    def release_as_of(
        self, track: str, semver: str, as_of: datetime | None
    ) -> tuple[Release | None, list[dict[str, Any]]]:
        """The release replayed from its own stored events up to ``as_of`` (all of them
        when None), and those events: computed from the log, not from any read model."""
        check_name(track, "track")
        release_id = Release.create_id(track, semver)
        release: Release | None = None
        history: list[dict[str, Any]] = []
        for domain_event in self.events.get(release_id):
            if as_of is not None and domain_event.timestamp > as_of:  # type: ignore[attr-defined]
                break
            release = domain_event.mutate(release)  # type: ignore[attr-defined]
            actor, data = event_fields(domain_event)
            history.append(
                {
                    "id": event_id(release_id, domain_event.originator_version),
                    "type": type(domain_event).__name__,
                    "version": domain_event.originator_version,
                    "timestamp": domain_event.timestamp.isoformat(),  # type: ignore[attr-defined]
                    "actor": actor,
                    "data": data,
                }
            )
        return release, history

    # --- rollout ----------------------------------------------------------------------

    def request_deployments(
        self,
        track: str,
        semver: str,
        installations: Sequence[str],
        applications: Sequence[str],
        phase: str,
        actor: str,
    ) -> DeploymentBatch:
        """Queues every (installation, application) pair in one atomic save, or none.

        Refused pairs are all listed, with the reason for each: ``not_targeted`` (no
        pipeline of the application reaches the installation), ``stage_gate``,
        ``in_progress`` (already queued or running) or ``phase_not_configured``.
        """
        if phase not in PHASES:
            raise InvalidInputError(f"phase must be one of {', '.join(PHASES)}", field="phase")
        wanted_installations = list(dict.fromkeys(installations))
        wanted_apps = list(dict.fromkeys(applications))
        if not wanted_installations or not wanted_apps:
            raise InvalidInputError("name at least one installation and one application")
        queued: list[QueuedDeployment] = []

        def command() -> list[Aggregate]:
            queued.clear()
            release = self.get_release(track, semver)
            release.check_deployable()
            unknown = [a for a in wanted_apps if a not in release.applications]
            if unknown:
                raise NotFoundError(
                    f"release {release.label} has no application {', '.join(unknown)}",
                    applications=unknown,
                )
            targets = self._targets(release)
            refused: list[dict[str, str]] = []
            accepted: list[tuple[Rollout, str, list[dict[str, Any]]]] = []
            rollouts: list[Rollout] = []
            for installation_id in wanted_installations:
                target = targets.get(installation_id)
                if target is None:
                    refused += [
                        {
                            "installation_id": installation_id,
                            "application": app,
                            "phase": phase,
                            "reason": "not_targeted",
                        }
                        for app in wanted_apps
                    ]
                    continue
                plan = {app: release.stage_of(app) for app in target.applications}
                rollout_id = Rollout.create_id(track, semver, installation_id)
                rollout = self._load_or_none(Rollout, rollout_id)
                if rollout is None:
                    rollout = Rollout(
                        track=track,
                        semver=semver,
                        tenant_id=target.tenant_id,
                        installation_id=installation_id,
                        plan=plan,
                        actor=actor,
                    )
                rollout.update_plan(plan, actor)
                rollouts.append(rollout)
                for app in wanted_apps:
                    environments = [
                        {k: v for k, v in env.items() if k != "pipeline"}
                        | {"target": env["pipeline"][PHASE_KEYS[phase]]}
                        for env in target.applications.get(app, [])
                        if env["pipeline"][PHASE_KEYS[phase]] is not None
                    ]
                    reason = rollout.refusal(app, phase)
                    if reason is None and not environments:
                        reason = "phase_not_configured"
                    if reason is not None:
                        refused.append(
                            {
                                "installation_id": installation_id,
                                "application": app,
                                "phase": phase,
                                "reason": reason,
                            }
                        )
                    else:
                        accepted.append((rollout, app, environments))
            if refused:
                error = (
                    StageGateError
                    if any(r["reason"] == "stage_gate" for r in refused)
                    else DeploymentRefusedError
                )
                raise error(
                    f"{len(refused)} of {len(wanted_installations) * len(wanted_apps)} "
                    "requested deployments may not run now; nothing was queued",
                    refused=refused,
                )
            for rollout, app, environments in accepted:
                requirement = release.requirements[app]
                dep_id = rollout.queue(
                    app,
                    phase,
                    requirement["workflow"],
                    requirement["image"],
                    environments,
                    actor,
                )
                queued.append(QueuedDeployment(dep_id, rollout.installation_id, app, phase))
            release.record_deployments_requested(
                phase, wanted_installations, wanted_apps, len(accepted), actor
            )
            return [release, *rollouts]

        outcome = self._execute(command)
        return DeploymentBatch(position=outcome.position, deployments=list(queued))

    @staticmethod
    def _task(rollout: Rollout, dep_id: str) -> DeploymentTask:
        dep = rollout.deployment(dep_id)
        return DeploymentTask(
            id=dep_id,
            track=rollout.track,
            semver=rollout.semver,
            tenant_id=rollout.tenant_id,
            installation_id=rollout.installation_id,
            application=dep["application"],
            phase=dep["phase"],
            image=dep["image"],
            environments=[dict(e) for e in dep["environments"]],
        )

    def deployment_tasks(self, ids: Sequence[str]) -> list[DeploymentTask]:
        """The tasks of deployments still in progress (for reconciliation); no change."""
        tasks = []
        rollouts: dict[UUID, Rollout] = {}
        for dep_id in ids:
            rollout_id, _ = parse_deployment_id(dep_id)
            if rollout_id not in rollouts:
                rollouts[rollout_id] = self._load(Rollout, rollout_id, f"deployment {dep_id}")
            if rollouts[rollout_id].deployment(dep_id)["status"] == "in_progress":
                tasks.append(self._task(rollouts[rollout_id], dep_id))
        return tasks

    def start_deployments(self, ids: Sequence[str], actor: str) -> list[DeploymentTask]:
        """Marks queued deployments in progress, in one save, and returns what to run.

        A deployment no longer queued (another worker took it, or it finished) is
        skipped; one whose release was held or rescinded before it started is failed
        with that reason instead of being run.
        """
        tasks: list[DeploymentTask] = []

        def command() -> list[Aggregate]:
            tasks.clear()
            rollouts: dict[UUID, Rollout] = {}
            releases: dict[UUID, Release] = {}
            for dep_id in ids:
                rollout_id, _ = parse_deployment_id(dep_id)
                if rollout_id not in rollouts:
                    rollouts[rollout_id] = self._load(Rollout, rollout_id, f"deployment {dep_id}")
                rollout = rollouts[rollout_id]
                release_id = Release.create_id(rollout.track, rollout.semver)
                if release_id not in releases:
                    releases[release_id] = self.get_release(rollout.track, rollout.semver)
                release = releases[release_id]
                dep = rollout.deployment(dep_id)
                if dep["status"] != "queued":
                    continue
                if release.status in ("on_hold", "rescinded"):
                    rollout.finish(
                        dep_id,
                        False,
                        f"not started: the release was {release.status} first",
                        actor,
                    )
                    continue
                rollout.start(dep_id, actor)
                tasks.append(self._task(rollout, dep_id))
            return list(rollouts.values())

        self._execute(command)
        return list(tasks)

    def finish_deployments(self, outcomes: Sequence[DeploymentOutcome], actor: str) -> int:
        """Records outcomes in one save; an outcome contradicting a recorded one is logged
        and dropped (the first report stands). Returns the position of the last event."""

        def command() -> list[Aggregate]:
            rollouts: dict[UUID, Rollout] = {}
            for outcome in outcomes:
                rollout_id, _ = parse_deployment_id(outcome.id)
                if rollout_id not in rollouts:
                    rollouts[rollout_id] = self._load(
                        Rollout, rollout_id, f"deployment {outcome.id}"
                    )
                try:
                    rollouts[rollout_id].finish(
                        outcome.id, outcome.succeeded, outcome.message, actor
                    )
                except DeploymentFinishedError as error:
                    log.warning(
                        "outcome dropped", extra={"deployment": outcome.id, "reason": error.detail}
                    )
            return list(rollouts.values())

        return self._execute(command).position

    def report_result(
        self, deployment_id: str, succeeded: bool, message: str, actor: str
    ) -> Outcome:
        """An external deployer's report. Repeating the recorded outcome is harmless."""

        def command() -> list[Aggregate]:
            rollout_id, _ = parse_deployment_id(deployment_id)
            rollout = self._load(Rollout, rollout_id, f"deployment {deployment_id!r}")
            rollout.finish(deployment_id, succeeded, message, actor)
            return [rollout]

        return self._execute(command)
