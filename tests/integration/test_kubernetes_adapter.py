"""The Kubernetes adapter against an HTTP fake of the API server.

No cluster can run here, so the official ``kubernetes`` client talks real HTTP to kmock's
Kubernetes emulator (an in-memory API server: objects are created, patched and read back
over the wire). Nothing in the client is patched. A tiny controller, driven by reads,
plays the parts of the deployment and job controllers (see ``FakeCluster``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes.client import ApiClient, Configuration

from adapters.deploy.kubernetes import (
    KubeconfigClients,
    KubernetesDeployTarget,
    job_name,
)
from api.bootstrap import Runtime
from api.schemas import KubernetesSpec
from application.hub import DeploymentTask
from domain.application import check_target
from domain.errors import InvalidTargetError

pytestmark = pytest.mark.integration

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
JOBS = kmock.resource("batch", "v1", "jobs")
GEN = "<generation>"  # in a rollout script: the Deployment's current generation
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

OLD, NEW = "registry.example/web:1.0.0", "registry.example/web:1.1.0"

# The deployment controller's status on successive reads after a change of 2 replicas: not
# yet observed; half-way (one new pod up, the old ones still there); every pod new but an old
# one still terminating; every pod new but one not yet available; done.
HALF_WAY: dict[str, Any] = {
    "observedGeneration": GEN,
    "replicas": 3,
    "updatedReplicas": 1,
    "availableReplicas": 2,
    "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
}
COMPLETES: list[dict[str, Any]] = [
    {},
    HALF_WAY,
    {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 2},
    {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1},
    {
        "observedGeneration": GEN,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": 2,
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        ],
    },
]
STALLS: list[dict[str, Any]] = [
    HALF_WAY,
    {
        "observedGeneration": GEN,
        "conditions": [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "web-7d9f" has timed out progressing.',
            }
        ],
    },
]

# A Job's status once finished: the job controller sets the count and the condition.
JOB_SUCCEEDED = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
JOB_FAILED = {
    "failed": 1,
    "conditions": [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    ],
}


class FakeCluster:
    """kmock's Kubernetes emulator on 127.0.0.1, served by its own event loop in a thread,
    with a minimal controller driven by the adapter's reads:

    - a PATCH that changes a Deployment's pod template bumps ``metadata.generation`` (as
      the API server does) and starts that Deployment's rollout script;
    - each GET of a Deployment applies the next status of its script, as the deployment
      controller would between two polls;
    - a Job's first GET shows it running, the next one its configured outcome.
    """

    def __init__(self) -> None:
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.forbidden: set[str] = set()
        self.job_outcome: dict[str, Any] = JOB_SUCCEEDED
        self._templates: dict[tuple[str, str], Any] = {}
        self._pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        self.url = started.result(timeout=10).rstrip("/")

    # --- the server's thread ----------------------------------------------------------

    def _serve(self, started: concurrent.futures.Future[str]) -> None:
        try:
            self._loop.run_until_complete(self._main(started))
        except BaseException as error:
            if not started.done():
                started.set_exception(error)
            raise
        finally:
            self._loop.close()

    async def _main(self, started: concurrent.futures.Future[str]) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s) as server:
            self.k8s = k8s
            k8s[kmock.action.UPDATE, DEPLOYMENTS] << self._patched
            k8s[kmock.action.FETCH, DEPLOYMENTS] << self._read_deployment
            k8s[kmock.action.FETCH, JOBS] << self._read_job
            started.set_result(str(server.url))
            await self._stop.wait()

    def _object(self, resource: Any, request: Any) -> Any:
        key = (resource, request.namespace, request.name)
        if key not in self.k8s.objects or self.k8s.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return self.k8s.objects[key]

    def _patched(self, request: Any) -> Any:
        obj = self._object(DEPLOYMENTS, request)
        key = (request.namespace, request.name)
        template = obj["spec"]["template"]
        if template != self._templates.get(key):
            self._templates[key] = copy.deepcopy(template)
            generation = obj["metadata"].get("generation", 1) + 1
            obj.patch({"metadata": {"generation": generation}})
            self._pending[key] = list(self.scripts.get(request.name, COMPLETES))
        return obj.raw

    def _read_deployment(self, request: Any) -> Any:
        if request.namespace in self.forbidden:
            raise kmock.KubernetesError(
                status=403,
                reason="Forbidden",
                message=f'deployments.apps "{request.name}" is forbidden: User "sdh" cannot '
                f'get resource "deployments" in the namespace "{request.namespace}"',
            )
        obj = self._object(DEPLOYMENTS, request)
        script = self._pending.get((request.namespace, request.name))
        if script:
            generation = obj["metadata"].get("generation", 1)
            step = {k: generation if v == GEN else v for k, v in script.pop(0).items()}
            if step:
                obj.patch({"status": step})
        return obj.raw

    def _read_job(self, request: Any) -> Any:
        obj = self._object(JOBS, request)
        status = obj.get("status") or {}
        if not status:
            obj.patch({"status": {"active": 1}})
        elif status.get("active"):
            obj.patch({"status": {"active": None, **self.job_outcome}})
        return obj.raw

    # --- the test's thread --------------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> Any:
        """Runs ``fn`` on the server's loop (kmock is not thread-safe) and returns its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def add_deployment(
        self,
        name: str,
        containers: dict[str, str],
        namespace: str = "shop",
        replicas: int | None = 2,
        status: dict[str, Any] | None = None,
        generation: int = 1,
        rolling: list[dict[str, Any]] | None = None,
    ) -> None:
        """A Deployment whose rollout of ``generation`` is done (unless ``status`` says
        otherwise); ``rolling`` is a script already under way, as if patched before."""
        pods = 1 if replicas is None else replicas  # the API server's default
        done = {
            "observedGeneration": generation,
            "replicas": pods,
            "updatedReplicas": pods,
            "readyReplicas": pods,
            "availableReplicas": pods,
        }
        template = {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": c, "image": i} for c, i in containers.items()]},
        }
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": generation},
            "spec": {
                **({} if replicas is None else {"replicas": replicas}),
                "selector": {"matchLabels": {"app": name}},
                "template": template,
            },
            "status": done if status is None else status,
        }

        def seed() -> None:
            self.k8s.objects[DEPLOYMENTS, namespace, name] = body
            self._templates[namespace, name] = copy.deepcopy(template)
            if rolling is not None:
                self._pending[namespace, name] = list(rolling)

        self.call(seed)

    def images(self, name: str, namespace: str = "shop") -> dict[str, str]:
        def read() -> dict[str, str]:
            obj = self.k8s.objects[DEPLOYMENTS, namespace, name]
            return {c["name"]: c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}

        result: dict[str, str] = self.call(read)
        return result

    def jobs(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            return [
                copy.deepcopy(obj.raw)
                for (resource, _, _), obj in self.k8s.objects.items()
                if resource == JOBS and not obj.deleted
            ]

        result: list[dict[str, Any]] = self.call(read)
        return result

    def requests(self, method: str) -> list[tuple[str, Any]]:
        """``(path, body)`` of every request with that HTTP method, in order."""
        result: list[tuple[str, Any]] = self.call(
            lambda: [(str(r.url.path), copy.deepcopy(r.data)) for r in self.k8s[method]]
        )
        return result

    def steps_left(self, name: str, namespace: str = "shop") -> int:
        """Statuses of the rollout script the controller has not reported yet."""
        left: int = self.call(lambda: len(self._pending.get((namespace, name), [])))
        return left

    def authorizations(self, method: str) -> list[str | None]:
        result: list[str | None] = self.call(
            lambda: [r.headers.get("Authorization") for r in self.k8s[method]]
        )
        return result

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster()
    yield fake
    fake.stop()


@pytest.fixture
def clients() -> list[str]:
    """The kubeconfig contexts the adapter asked clients for, in order."""
    return []


@pytest.fixture
def adapter(cluster: FakeCluster, clients: list[str]) -> Iterator[KubernetesDeployTarget]:
    made: list[ApiClient] = []

    def api_client_for(context: str) -> ApiClient:
        clients.append(context)
        client = ApiClient(Configuration(host=cluster.url))
        made.append(client)
        return client

    yield KubernetesDeployTarget(api_client_for, poll_interval=0.02, timeout=5.0)
    for client in made:
        client.close()


def task(phase: str = "deploy", image: str = NEW, dep_id: str | None = None) -> DeploymentTask:
    return DeploymentTask(
        id=dep_id or "0f8e4c2a9b7d4e1f8a6b5c4d3e2f1a0b-1",
        track="shop",
        semver="1.1.0",
        tenant_id="acme",
        installation_id="acme-prod",
        application="web",
        phase=phase,
        image=image,
        environments=[],
    )


def env(env_namespace: str = "shop", cluster: str = "prod-eu", **target: Any) -> dict[str, Any]:
    """An environment of the task, as the hub builds it; ``target`` is the kubernetes spec."""
    spec = {"deployment": "web", **target}
    return {
        "environment": "prod",
        "cluster": cluster,
        "namespace": env_namespace,
        "target": {"kubernetes": spec},
    }


# --- deploy: the Deployment's image and its rollout -------------------------------------------


def test_deploy_sets_the_image_of_the_application_container_and_waits_for_the_rollout(
    cluster: FakeCluster, adapter: KubernetesDeployTarget, clients: list[str]
) -> None:
    cluster.add_deployment("web", {"istio-proxy": "istio/proxy:1.20", "web": OLD})

    result = adapter.deploy(task(), env())

    assert result.status == "succeeded", result.message
    assert "2/2" in result.message
    assert cluster.images("web") == {"istio-proxy": "istio/proxy:1.20", "web": NEW}
    [(path, patch)] = cluster.requests("patch")
    assert path == "/apis/apps/v1/namespaces/shop/deployments/web"
    assert patch[-1] == {
        "op": "replace",
        "path": "/spec/template/spec/containers/1/image",
        "value": NEW,
    }
    # It returned only after the controller's last step, not on the half-way status.
    assert cluster.steps_left("web") == 0
    assert clients == ["prod-eu"]


def test_deploy_sets_the_image_of_the_container_the_target_names(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"web": OLD, "worker": OLD})

    result = adapter.deploy(task(), env(container="worker"))

    assert result.status == "succeeded", result.message
    assert cluster.images("web") == {"web": OLD, "worker": NEW}


def test_deploy_sets_the_image_of_the_only_container_whatever_its_name(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"app": OLD})

    assert adapter.deploy(task(), env()).status == "succeeded"
    assert cluster.images("web") == {"app": NEW}


@pytest.mark.parametrize(
    ("target_ns", "env_ns", "used"),
    [("payments", "shop", "payments"), (None, "shop", "shop"), (None, "", "default")],
)
def test_deploy_uses_the_target_namespace_else_the_environment_one_else_default(
    cluster: FakeCluster,
    adapter: KubernetesDeployTarget,
    target_ns: str | None,
    env_ns: str,
    used: str,
) -> None:
    cluster.add_deployment("web", {"web": OLD}, namespace=used)
    target = {"namespace": target_ns} if target_ns else {}

    assert adapter.deploy(task(), env(env_namespace=env_ns, **target)).status == "succeeded"
    assert cluster.images("web", namespace=used) == {"web": NEW}


def test_deploy_fails_when_the_rollout_exceeds_its_progress_deadline(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.scripts["web"] = STALLS
    cluster.add_deployment("web", {"web": OLD})

    result = adapter.deploy(task(), env())

    assert result.status == "failed"
    assert "shop/web exceeded its progress deadline" in result.message
    assert "timed out progressing" in result.message


def test_deploy_ignores_the_deadline_of_an_earlier_rollout_until_the_new_one_is_observed(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    # The previous rollout stalled; its condition is still there when we patch.
    cluster.add_deployment("web", {"web": OLD}, status={**STALLS[1], "observedGeneration": 1})

    result = adapter.deploy(task(), env())

    assert result.status == "succeeded", result.message


def test_deploy_fails_when_the_deployment_does_not_exist(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    result = adapter.deploy(task(), env())

    assert result.status == "failed"
    assert result.message == "deployment shop/web not found"
    assert cluster.requests("patch") == []


def test_deploy_refuses_to_guess_between_several_containers(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"api": OLD, "worker": OLD})

    result = adapter.deploy(task(), env())

    assert result.status == "failed"
    assert "api, worker" in result.message
    assert "kubernetes.container" in result.message
    assert cluster.requests("patch") == []
    assert cluster.images("web") == {"api": OLD, "worker": OLD}


def test_deploy_fails_when_the_named_container_does_not_exist(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"web": OLD})

    result = adapter.deploy(task(), env(container="sidecar"))

    assert result.status == "failed"
    assert "no container sidecar" in result.message
    assert cluster.requests("patch") == []


def test_deploy_reports_the_status_and_reason_when_the_api_refuses(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.forbidden.add("shop")

    result = adapter.deploy(task(), env())

    assert result.status == "failed"
    assert "HTTP 403" in result.message
    assert 'cannot get resource "deployments"' in result.message


def test_deploy_fails_without_raising_when_the_api_server_is_unreachable() -> None:
    closed = FakeCluster()
    closed.stop()  # nothing listens on its port any more
    client = ApiClient(Configuration(host=closed.url))
    adapter = KubernetesDeployTarget(lambda _: client, poll_interval=0.02, timeout=1.0)

    result = adapter.deploy(task(), env())

    client.close()
    assert result.status == "failed"
    assert "unreachable" in result.message


def test_deploy_fails_when_the_rollout_does_not_finish_in_time(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.scripts["web"] = [HALF_WAY] * 1000  # stuck half-way
    cluster.add_deployment("web", {"web": OLD})
    adapter.timeout = 0.3

    started = time.monotonic()
    result = adapter.deploy(task(), env())

    assert result.status == "failed"
    assert "did not finish its rollout within 0.3s" in result.message
    assert "updated 1/2, available 2/2" in result.message
    assert time.monotonic() - started < 3


# --- pre/post: a Job -------------------------------------------------------------------------


def test_pre_deploy_runs_a_job_with_the_image_command_and_labels(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    migrate = ["./manage.py", "migrate", "--no-input"]

    result = adapter.deploy(task("pre"), env(command=migrate))

    assert result.status == "succeeded", result.message
    [(path, job)] = cluster.requests("post")
    assert path == "/apis/batch/v1/namespaces/shop/jobs"
    name = job["metadata"]["name"]
    assert name.startswith("web-pre-")
    assert DNS_LABEL.match(name)
    assert len(name) <= 63
    labels = {
        "sdh.dev/deployment-id": "0f8e4c2a9b7d4e1f8a6b5c4d3e2f1a0b-1",
        "sdh.dev/application": "web",
        "sdh.dev/phase": "pre",
    }
    assert job["metadata"]["labels"] == labels
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 86400
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["image"] == NEW
    assert container["command"] == migrate
    assert result.message == f"job shop/{name} succeeded"


def test_a_step_without_a_command_runs_the_image_entrypoint(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    assert adapter.deploy(task("post"), env()).status == "succeeded"

    [(_, job)] = cluster.requests("post")
    assert job["metadata"]["name"].startswith("web-post-")
    assert job["metadata"]["labels"]["sdh.dev/phase"] == "post"
    assert "command" not in job["spec"]["template"]["spec"]["containers"][0]


def test_post_deploy_fails_when_its_job_fails(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.job_outcome = JOB_FAILED

    result = adapter.deploy(task("post"), env(command=["smoke-test"]))

    assert result.status == "failed"
    assert "BackoffLimitExceeded: Job has reached the specified backoff limit" in result.message


@pytest.mark.parametrize(
    ("status", "outcome", "said"),
    [
        ({"succeeded": 1}, "succeeded", "succeeded"),
        ({"failed": 1}, "failed", "failed (1 pod(s) failed)"),
        ({"conditions": JOB_FAILED["conditions"]}, "failed", "failed (BackoffLimitExceeded"),
    ],
)
def test_a_step_ends_on_the_pod_count_or_the_condition_alone(
    cluster: FakeCluster,
    adapter: KubernetesDeployTarget,
    status: dict[str, Any],
    outcome: str,
    said: str,
) -> None:
    cluster.job_outcome = status
    adapter.timeout = 1.0

    result = adapter.deploy(task("post"), env())

    assert result.status == outcome
    assert said in result.message


def test_a_step_run_again_watches_the_job_of_the_first_attempt(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    first = adapter.deploy(task("pre"), env(command=["migrate"]))
    again = adapter.deploy(task("pre"), env(command=["migrate"]))

    assert first.status == again.status == "succeeded"
    assert len(cluster.jobs()) == 1
    # A different deployment gets its own Job.
    adapter.deploy(task("pre", dep_id="0f8e4c2a9b7d4e1f8a6b5c4d3e2f1a0b-2"), env())
    assert len(cluster.jobs()) == 2


def test_a_step_refuses_a_job_of_the_same_name_that_another_deployment_owns(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    name = job_name("web", "pre", task().id, "prod")
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "shop", "labels": {"owner": "someone-else"}},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}]}}},
    }
    cluster.call(lambda: cluster.k8s.objects.__setitem__((JOBS, "shop", name), foreign))

    result = adapter.deploy(task("pre"), env())

    assert result.status == "failed"
    assert "belongs to another deployment" in result.message


def test_job_names_are_stable_valid_and_distinct_per_deployment_and_environment() -> None:
    long_name = "Payments.Gateway_" + "x" * 80
    name = job_name(long_name, "post", "abc-1", "prod")

    assert DNS_LABEL.match(name)
    assert len(name) <= 63
    assert name == job_name(long_name, "post", "abc-1", "prod")
    assert name != job_name(long_name, "post", "abc-2", "prod")
    assert name != job_name(long_name, "post", "abc-1", "staging")
    assert job_name("web", "pre", "abc-1", "prod").startswith("web-pre-")


# --- check: reconciliation after a restart ----------------------------------------------------


def test_check_reports_success_without_patching_when_the_image_is_already_rolled_out(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"web": NEW})

    result = adapter.check(task(), env())

    assert result is not None
    assert result.status == "succeeded"
    assert cluster.requests("patch") == []


def test_check_counts_one_replica_when_the_deployment_does_not_say(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"web": NEW}, replicas=None)
    adapter.timeout = 0.3

    result = adapter.check(task(), env())

    assert result is not None
    assert result.status == "succeeded", result.message
    assert "1/1" in result.message


def test_check_waits_for_a_rollout_of_the_image_still_under_way(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    # Patched by the process that crashed; the controller has not caught up yet.
    cluster.add_deployment(
        "web", {"web": NEW}, generation=2, status={"observedGeneration": 1}, rolling=COMPLETES
    )

    result = adapter.check(task(), env())

    assert result is not None
    assert result.status == "succeeded", result.message
    assert cluster.requests("patch") == []


def test_check_cannot_tell_when_the_deployment_runs_another_image(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    cluster.add_deployment("web", {"web": OLD})

    assert adapter.check(task(), env()) is None
    assert cluster.requests("patch") == []


def test_check_cannot_tell_when_the_deployment_is_missing(adapter: KubernetesDeployTarget) -> None:
    assert adapter.check(task(), env()) is None


def test_check_returns_the_outcome_of_an_existing_job_and_none_without_one(
    cluster: FakeCluster, adapter: KubernetesDeployTarget
) -> None:
    assert adapter.check(task("pre"), env()) is None

    cluster.job_outcome = JOB_FAILED
    adapter.deploy(task("pre"), env())
    result = adapter.check(task("pre"), env())

    assert result is not None
    assert result.status == "failed"
    assert len(cluster.requests("post")) == 1


# --- the default client factory: kubeconfig contexts ------------------------------------------


def kubeconfig(path: Path, servers: dict[str, str], current: str) -> Path:
    clusters = "".join(
        f"- name: {name}\n  cluster:\n    server: {url}\n" for name, url in servers.items()
    )
    contexts = "".join(
        f"- name: {name}\n  context:\n    cluster: {name}\n    user: sdh\n" for name in servers
    )
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n{clusters}contexts:\n{contexts}current-context: {current}\n"
        "users:\n- name: sdh\n  user:\n    token: not-a-secret\n"
    )
    return path


def test_the_environment_cluster_names_the_kubeconfig_context(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster.add_deployment("web", {"web": OLD})
    config = kubeconfig(
        tmp_path / "config",
        {"prod-eu": cluster.url, "prod-us": "http://127.0.0.1:9"},
        current="prod-us",
    )
    factory = KubeconfigClients(str(config))
    adapter = KubernetesDeployTarget(factory, poll_interval=0.02, timeout=5.0)

    assert adapter.deploy(task(), env(cluster="prod-eu")).status == "succeeded"
    # No cluster: the current context, which points where nothing listens.
    current = adapter.deploy(task(), env(cluster=""))
    assert current.status == "failed"
    assert "unreachable" in current.message
    assert factory("prod-eu") is factory("prod-eu")
    # The context's credentials went along.
    assert cluster.authorizations("patch") == ["Bearer not-a-secret"]


def test_a_missing_kubeconfig_or_context_fails_the_deployment_with_the_reason(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    missing = KubernetesDeployTarget(KubeconfigClients(str(tmp_path / "absent")), timeout=1.0)
    result = missing.deploy(task(), env())
    assert result.status == "failed"
    assert "no Kubernetes client for context prod-eu" in result.message
    assert missing.check(task(), env()) is None

    config = kubeconfig(tmp_path / "config", {"prod-eu": cluster.url}, current="prod-eu")
    unknown = KubernetesDeployTarget(KubeconfigClients(str(config)), timeout=1.0)
    result = unknown.deploy(task(), env(cluster="mars"))
    assert result.status == "failed"
    assert "context mars" in result.message


# --- pipeline target validation -------------------------------------------------------------


def test_a_kubernetes_target_takes_a_command_as_a_list_of_strings() -> None:
    good = {"kubernetes": {"deployment": "web", "command": ["migrate", "--check"]}}
    assert check_target(good) == good
    for bad in ("migrate --check", [1, 2], {"0": "migrate"}):
        with pytest.raises(InvalidTargetError):
            check_target({"kubernetes": {"deployment": "web", "command": bad}})

    assert KubernetesSpec(deployment="web", command=["a"] * 50).command == ["a"] * 50
    for too_much in (["a"] * 51, ["x" * 1001]):
        with pytest.raises(ValueError, match="command"):
            KubernetesSpec(deployment="web", command=too_much)


# --- end to end: a deployment requested through the hub ---------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_deployment_requested_through_the_hub_succeeds_on_the_cluster(
    cluster: FakeCluster, adapter: KubernetesDeployTarget, clients: list[str], runtime: Runtime
) -> None:
    runtime.deployer.targets["kubernetes"] = adapter
    cluster.add_deployment("web", {"web": OLD})
    hub, actor = runtime.hub, "alice"
    hub.register_environment("prod", "prod-eu", "shop", "", actor)
    hub.register_application("web", "shop", "", actor)
    hub.set_pipeline("web", "prod", {"kubernetes": {"deployment": "web"}}, None, None, actor)
    hub.register_image("web", "build", NEW, "c0ffee", actor)
    hub.register_tenant("acme", "Acme", "", actor)
    hub.add_installation("acme", "acme-prod", "Production", actor)
    hub.map_environments("acme", "acme-prod", ["prod"], actor)
    hub.create_track("shop", "", None, actor)
    hub.create_release("shop", "1.1.0", None, "", None, actor)
    hub.set_stages("shop", "1.1.0", [["web"]], actor)
    hub.set_release_application("shop", "1.1.0", "web", None, NEW, None, actor)
    hub.lock_requirements("shop", "1.1.0", actor)
    hub.mark_ready("shop", "1.1.0", actor)

    hub.request_deployments("shop", "1.1.0", ["acme-prod"], ["web"], "deploy", actor)

    deadline = time.monotonic() + 15
    history = runtime.rollouts.history("shop", "1.1.0")
    while not (history and history[0]["status"] in ("succeeded", "failed")):
        assert time.monotonic() < deadline, f"deployment did not finish: {history}"
        time.sleep(0.05)
        history = runtime.rollouts.history("shop", "1.1.0")
    [record] = history
    assert record["status"] == "succeeded", record["message"]
    assert record["image"] == NEW
    assert cluster.images("web") == {"web": NEW}
    assert clients == ["prod-eu"]
