"""The composition root: builds the hub, the read models and the followers from Settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from adapters.audit_store import SqlChainStore
from adapters.checkpoint import ViewStoreCheckpoint
from adapters.deploy.kubernetes import KubeconfigClients, KubernetesDeployTarget
from adapters.deploy.simulate import SimulatedDeployTarget
from adapters.deploy.webhook import WebhookDeployTarget
from adapters.leases import FileLease, PostgresAdvisoryLease
from adapters.nats_relay import NatsRelay, StreamSettings, hub_origin
from adapters.settings import Settings
from adapters.tokens import Authenticator, load_or_create_admin_token
from adapters.viewstores import PostgresViewStore, SqliteViewStore
from application.audit import AuditChainKeeper
from application.deploy import Deployer, DeployTarget
from application.follower import Follower
from application.hub import Hub
from application.ports import Lease
from projections.base import ReadModels
from projections.catalog import CatalogProjection, CatalogQueries
from projections.releases import ReleaseProjection, ReleaseQueries
from projections.rollout import RolloutProjection, RolloutQueries
from projections.store import ViewStore
from projections.tenants import TenantProjection, TenantQueries
from projections.tokens import TokenProjection, TokenQueries

log = logging.getLogger("sdh")

# Arbitrary but fixed: serialises schema creation between processes starting together.
_SCHEMA_LOCK_KEY = 0x5D4_0001


@contextmanager
def _schema_lock(settings: Settings) -> Iterator[None]:
    if settings.database_url is None:
        yield
        return
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,))


def build_view_store(settings: Settings) -> ViewStore:
    if settings.database_url is not None:
        return PostgresViewStore(
            settings.database_url, settings.database_schema, settings.pool_size
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteViewStore(settings.data_dir / "views.sqlite")


def build_lease(settings: Settings, follower: str) -> Lease:
    """One process at a time runs each follower with outside effects."""
    if settings.database_url is not None:
        return PostgresAdvisoryLease(
            settings.database_url, f"sdh:{settings.database_schema}:{follower}"
        )
    return FileLease(settings.data_dir / "locks" / f"{follower}.lock")


# Every background worker of a process, as `sdh serve` and a plain `sdh worker` run them.
ALL_WORKERS = frozenset({"projections", "deployer", "relay"})


@dataclass
class Runtime:
    settings: Settings
    hub: Hub
    store: ViewStore
    views: ReadModels
    catalog: CatalogQueries
    tenants: TenantQueries
    releases: ReleaseQueries
    rollouts: RolloutQueries
    tokens: TokenQueries
    auth: Authenticator
    admin_token_generated: bool
    deployer: Deployer
    projector: Follower
    deploy_follower: Follower
    chain: SqlChainStore
    chain_keeper: Follower
    followers: list[Follower] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _deployer_started: bool = False
    # The NATS relay, when SDH_NATS_URL is set.
    relay: NatsRelay | None = None
    relay_follower: Follower | None = None

    def start(self, workers: frozenset[str] = ALL_WORKERS) -> None:
        """Starts the background workers of this process (all of them by default;
        the relay only when NATS is configured)."""
        if "projections" in workers:
            # Catch up first, so the deployer reconciles against current views.
            self.projector.catch_up()
            self.projector.start()
            self.followers.append(self.projector)
            # The audit chain is bookkeeping in the same database: it runs with the views.
            self.chain_keeper.start()
            self.followers.append(self.chain_keeper)
        if "deployer" in workers:
            self.deployer.start()
            self._deployer_started = True
            self.deploy_follower.start()
            self.followers.append(self.deploy_follower)
        if "relay" in workers and self.relay is not None and self.relay_follower is not None:
            self.relay.start()
            self.relay_follower.start()
            self.followers.append(self.relay_follower)

    def close(self) -> None:
        self.stopping.set()
        for follower in self.followers:
            follower.stop()
        if self._deployer_started:
            self.deployer.stop()
        if self.relay is not None:
            self.relay.close()
        self.store.close()
        self.hub.close()

    def wait_for(self, position: int) -> bool:
        """Read-your-writes: wait (bounded) until the read models include ``position``."""
        if position <= 0:
            return True
        for follower in self.followers:
            follower.wake()
        return self.views.wait_for(position, self.settings.consistency_timeout)


def build_runtime(settings: Settings) -> Runtime:
    with _schema_lock(settings):
        store = build_view_store(settings)
        hub = Hub(env=settings.event_store_env())
        views = ReadModels(
            store,
            [
                CatalogProjection(),
                TenantProjection(),
                ReleaseProjection(),
                RolloutProjection(),
                TokenProjection(),
            ],
        )
        views.create_tables()
        tokens = TokenQueries(store)
        if settings.admin_token:
            bootstrap_secret, generated = settings.admin_token, False
        else:
            bootstrap_secret, generated = load_or_create_admin_token(settings.data_dir)
        auth = Authenticator(store, tokens, bootstrap_secret)
        checkpoint = ViewStoreCheckpoint(store, "deployer")
        chain = SqlChainStore(store)
        relay_checkpoint = ViewStoreCheckpoint(store, "relay") if settings.nats_url else None
    rollouts = RolloutQueries(store)
    stopping = threading.Event()
    targets: dict[str, DeployTarget] = {
        "simulate": SimulatedDeployTarget(settings.simulate_seconds, stopping),
        "webhook": WebhookDeployTarget(settings.public_url),
        # Loads a kubeconfig context only when a deployment first needs it.
        "kubernetes": KubernetesDeployTarget(KubeconfigClients(settings.kubeconfig)),
    }
    deployer = Deployer(
        hub,
        checkpoint,
        targets,
        unfinished=rollouts.unfinished,
        concurrency=settings.deploy_concurrency,
        pending_timeout=settings.webhook_timeout,
        views_reach=lambda position: views.wait_for(position, 30.0),
    )
    runtime = Runtime(
        settings=settings,
        hub=hub,
        store=store,
        views=views,
        catalog=CatalogQueries(store),
        tenants=TenantQueries(store),
        releases=ReleaseQueries(store),
        rollouts=rollouts,
        tokens=tokens,
        auth=auth,
        admin_token_generated=generated,
        deployer=deployer,
        projector=Follower(hub, views, poll_interval=settings.poll_interval),
        deploy_follower=Follower(
            hub,
            deployer,
            poll_interval=settings.poll_interval,
            lease=build_lease(settings, "deployer"),
        ),
        chain=chain,
        chain_keeper=Follower(
            hub,
            AuditChainKeeper(chain),
            batch_size=2000,
            poll_interval=settings.poll_interval,
            reader=hub.read_notifications,
        ),
        stopping=stopping,
    )
    if settings.nats_url and relay_checkpoint is not None:
        # Connects lazily (in start() or on the first batch): building a runtime for a
        # CLI command never touches NATS, and sdh starts while NATS is down.
        runtime.relay = NatsRelay(
            settings.nats_url,
            relay_checkpoint,
            source=settings.event_source,
            stream=StreamSettings(
                settings.nats_stream_max_age_days, settings.nats_duplicate_window_seconds
            ),
            origin=hub_origin(hub),
        )
        runtime.relay_follower = Follower(
            hub,
            runtime.relay,
            batch_size=1000,
            poll_interval=settings.poll_interval,
            max_backoff=5.0,
            lease=build_lease(settings, "relay"),
        )
    return runtime
