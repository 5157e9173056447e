"""The Kubernetes adapter: sets the image on a Deployment and waits for its rollout; runs
the pre- and post-deploy steps as Jobs.

Target: ``{"kubernetes": {"namespace"?, "deployment", "container"?, "command"?}}``. The
namespace is the target's, else the environment's, else ``default``; the environment's
``cluster`` names the kubeconfig context (empty: the current context).

Idempotency (the deployment id is the key): ``deploy`` patches the Deployment only when
its container does not already run the image, and a step's Job is named from the
deployment id, so a second attempt finds the Job of the first (409) and watches it
instead of starting another. ``check`` reconciles after a restart by reading what the
cluster already shows. Every failure, API errors included, comes back as a failed
``TargetResult`` with a message; nothing raises out of ``deploy`` or ``check``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import (
    ApiClient,
    ApiException,
    AppsV1Api,
    BatchV1Api,
    Configuration,
    V1Container,
    V1Deployment,
    V1Job,
    V1JobSpec,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)

from application.deploy import TargetResult
from application.hub import DeploymentTask

log = logging.getLogger("sdh.deploy.kubernetes")

# Given the environment's ``cluster`` (a kubeconfig context name, "" for the current one).
ApiClientFactory = Callable[[str], ApiClient]

FIELD_MANAGER = "sdh"
JOB_TTL_SECONDS = 86_400
LABEL_PREFIX = "sdh.dev/"
_DNS_LABEL_MAX = 63

# A finished rollout or Job: its status and what to say about it.
Outcome = tuple[Literal["succeeded", "failed"], str]
_T = TypeVar("_T")


class _StepError(Exception):
    """Ends one deploy or check with a failed result carrying this message."""


class KubeconfigClients:
    """The default ``ApiClientFactory``: one client per kubeconfig context, loaded on first
    use (so sdh starts without a kubeconfig) and kept for the life of the process.

    ``kubeconfig`` None means the client library's default (``$KUBECONFIG`` or
    ``~/.kube/config``); when that file does not exist, an environment with no ``cluster``
    uses the in-cluster service account (sdh running in a pod).
    """

    def __init__(self, kubeconfig: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self._clients: dict[str, ApiClient] = {}
        self._lock = threading.Lock()

    def __call__(self, cluster: str) -> ApiClient:
        with self._lock:
            client = self._clients.get(cluster)
            if client is None:
                # A failure is not cached: a kubeconfig fixed later is picked up.
                client = self._clients[cluster] = self._load(cluster)
            return client

    def _load(self, cluster: str) -> ApiClient:
        # $KUBECONFIG (read by the client library) may list several files.
        path = self.kubeconfig or str(kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
        found = any(Path(p).expanduser().exists() for p in path.split(os.pathsep) if p)
        if self.kubeconfig is None and not found:
            if cluster:
                raise kube_config.ConfigException(
                    f"no kubeconfig at {path} to find the context in (set SDH_KUBECONFIG)"
                )
            configuration = Configuration()
            try:
                _load_incluster_config(client_configuration=configuration)
            except kube_config.ConfigException as error:
                raise kube_config.ConfigException(
                    f"no kubeconfig at {path} (set SDH_KUBECONFIG) and no in-cluster "
                    f"service account ({error})"
                ) from None
            return ApiClient(configuration)
        return _new_client_from_config(config_file=path, context=cluster or None)


# The client library's config module is untyped; these are its signatures as we use them.
_load_incluster_config: Callable[..., None] = kube_config.load_incluster_config
_new_client_from_config: Callable[..., ApiClient] = kube_config.new_client_from_config


@dataclass(frozen=True)
class _Where:
    """One environment's view of the target: where the Deployment lives, and how to reach it."""

    namespace: str
    deployment: str
    container: str | None
    command: list[str] | None
    apps: AppsV1Api
    batch: BatchV1Api

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.deployment}"


class KubernetesDeployTarget:
    kind = "kubernetes"

    def __init__(
        self,
        api_client_for: ApiClientFactory,
        poll_interval: float = 2.0,
        timeout: float = 600.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.api_client_for = api_client_for
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.request_timeout = request_timeout

    # --- the port -------------------------------------------------------------------

    def deploy(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult:
        try:
            where = self._where(environment)
            if task.phase == "deploy":
                return self._roll_out(where, task)
            return self._run_job(where, task, environment)
        except _StepError as failure:
            log.warning(
                "kubernetes step failed", extra={"deployment": task.id, "error": str(failure)}
            )
            return TargetResult("failed", str(failure))

    def check(self, task: DeploymentTask, environment: dict[str, Any]) -> TargetResult | None:
        try:
            where = self._where(environment)
            if task.phase == "deploy":
                deployment = self._read_deployment(where)
                if deployment is None:
                    return None
                index, _ = self._container(where, deployment, task.application)
                if _containers(deployment)[index].image != task.image:
                    return None
                return self._await_rollout(where)
            name = job_name(
                where.deployment, task.phase, task.id, environment.get("environment", "")
            )
            if self._read_job(where, name) is None:
                return None
            return self._await_job(where, name)
        except _StepError:
            # Cannot tell: the deployer runs deploy(), which reports what is wrong.
            return None

    # --- deploy: the Deployment's image and its rollout -------------------------------

    def _roll_out(self, where: _Where, task: DeploymentTask) -> TargetResult:
        deployment = self._read_deployment(where)
        if deployment is None:
            raise _StepError(f"deployment {where.label} not found")
        index, container = self._container(where, deployment, task.application)
        if _containers(deployment)[index].image != task.image:
            # JSON patch: the test op refuses the change if the containers were reordered
            # since we read them, instead of setting the image on another container.
            path = f"/spec/template/spec/containers/{index}"
            patch = [
                {"op": "test", "path": f"{path}/name", "value": container},
                {"op": "replace", "path": f"{path}/image", "value": task.image},
            ]
            with _api(f"setting the image of {where.label}"):
                where.apps.patch_namespaced_deployment(
                    where.deployment,
                    where.namespace,
                    patch,
                    field_manager=FIELD_MANAGER,
                    _content_type="application/json-patch+json",
                    _request_timeout=self.request_timeout,
                )
            log.info(
                "image set",
                extra={"deployment": task.id, "target": where.label, "container": container},
            )
        return self._await_rollout(where)

    def _await_rollout(self, where: _Where) -> TargetResult:
        return self._watch(
            lambda: self._read_deployment(where),
            rollout_outcome,
            f"deployment {where.label}",
            gone="was deleted during its rollout",
            late=lambda d: (
                f"did not finish its rollout within {self.timeout:g}s ({rollout_progress(d)})"
            ),
        )

    def _watch(
        self,
        read: Callable[[], _T | None],
        judge: Callable[[_T], Outcome | None],
        label: str,
        gone: str,
        late: Callable[[_T], str],
    ) -> TargetResult:
        """Polls an object until ``judge`` has an outcome or the timeout passes."""
        deadline = time.monotonic() + self.timeout
        while True:
            current = read()
            if current is None:
                raise _StepError(f"{label} {gone}")
            outcome = judge(current)
            if outcome is not None:
                status, message = outcome
                return TargetResult(status, f"{label} {message}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return TargetResult("failed", f"{label} {late(current)}")
            time.sleep(min(self.poll_interval, remaining))

    def _read_deployment(self, where: _Where) -> V1Deployment | None:
        with _api(f"reading deployment {where.label}"):
            try:
                deployment: V1Deployment = where.apps.read_namespaced_deployment(
                    where.deployment, where.namespace, _request_timeout=self.request_timeout
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
        return deployment

    @staticmethod
    def _container(where: _Where, deployment: V1Deployment, application: str) -> tuple[int, str]:
        """The container to set the image on: the one the target names, else the one named
        like the application, else the only one."""
        names = [c.name for c in _containers(deployment)]
        listed = ", ".join(names) or "none"
        if where.container:
            if where.container not in names:
                raise _StepError(
                    f"deployment {where.label} has no container {where.container} "
                    f"(containers: {listed})"
                )
            return names.index(where.container), where.container
        if application in names:
            return names.index(application), application
        if len(names) == 1:
            return 0, names[0]
        raise _StepError(
            f"deployment {where.label} has containers {listed} and none is named {application}: "
            f"name the one to update in the pipeline target's kubernetes.container"
        )

    # --- pre/post: a Job ------------------------------------------------------------

    def _run_job(
        self, where: _Where, task: DeploymentTask, environment: dict[str, Any]
    ) -> TargetResult:
        name = job_name(where.deployment, task.phase, task.id, environment.get("environment", ""))
        labels = {
            f"{LABEL_PREFIX}deployment-id": label_value(task.id),
            f"{LABEL_PREFIX}application": label_value(task.application),
            f"{LABEL_PREFIX}phase": label_value(task.phase),
        }
        job = V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=V1ObjectMeta(name=name, namespace=where.namespace, labels=labels),
            spec=V1JobSpec(
                backoff_limit=0,
                ttl_seconds_after_finished=JOB_TTL_SECONDS,
                # The Job does not outlive our wait for it.
                active_deadline_seconds=max(1, int(self.timeout)),
                template=V1PodTemplateSpec(
                    metadata=V1ObjectMeta(labels=labels),
                    spec=V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            V1Container(
                                name=dns_label(task.application) or "step",
                                image=task.image,
                                command=where.command,
                            )
                        ],
                    ),
                ),
            ),
        )
        with _api(f"creating job {where.namespace}/{name}"):
            try:
                where.batch.create_namespaced_job(
                    where.namespace,
                    job,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=self.request_timeout,
                )
                log.info("job created", extra={"deployment": task.id, "job": name})
            except ApiException as error:
                if error.status != 409:
                    raise
                # Our earlier attempt (the name comes from the deployment id): watch it.
                self._adopt(where, name, labels)
        return self._await_job(where, name)

    def _adopt(self, where: _Where, name: str, labels: dict[str, str]) -> None:
        existing = self._read_job(where, name)
        if existing is None:
            raise _StepError(f"job {where.namespace}/{name} exists but cannot be read")
        key = f"{LABEL_PREFIX}deployment-id"
        theirs = (existing.metadata.labels or {}).get(key) if existing.metadata else None
        if theirs != labels[key]:
            raise _StepError(
                f"job {where.namespace}/{name} exists and belongs to another deployment"
            )
        log.info("job already exists; watching it", extra={"job": name})

    def _await_job(self, where: _Where, name: str) -> TargetResult:
        return self._watch(
            lambda: self._read_job(where, name),
            job_outcome,
            f"job {where.namespace}/{name}",
            gone="was deleted before it finished",
            late=lambda _: f"did not finish within {self.timeout:g}s",
        )

    def _read_job(self, where: _Where, name: str) -> V1Job | None:
        with _api(f"reading job {where.namespace}/{name}"):
            try:
                job: V1Job = where.batch.read_namespaced_job(
                    name, where.namespace, _request_timeout=self.request_timeout
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
        return job

    # --- the environment --------------------------------------------------------------

    def _where(self, environment: dict[str, Any]) -> _Where:
        spec = (environment.get("target") or {}).get("kubernetes") or {}
        deployment = spec.get("deployment")
        if not isinstance(deployment, str) or not deployment:
            raise _StepError("the pipeline target names no kubernetes.deployment")
        cluster = str(environment.get("cluster") or "")
        try:
            client = self.api_client_for(cluster)
        except Exception as error:
            # The factory is pluggable and kubeconfig parsing raises many kinds of error
            # (missing file, YAML, unknown context, auth plugins): each one fails this
            # deployment with its reason instead of the worker.
            context = f"context {cluster}" if cluster else "the current context"
            raise _StepError(
                f"no Kubernetes client for {context}: {type(error).__name__}: {error}"[:500]
            ) from None
        return _Where(
            namespace=spec.get("namespace") or environment.get("namespace") or "default",
            deployment=deployment,
            container=spec.get("container") or None,
            command=list(spec["command"]) if spec.get("command") else None,
            apps=AppsV1Api(client),
            batch=BatchV1Api(client),
        )


# --- reading a Deployment and a Job -----------------------------------------------------


def _containers(deployment: V1Deployment) -> list[V1Container]:
    spec = deployment.spec
    pod = spec.template.spec if spec is not None and spec.template is not None else None
    return list(pod.containers) if pod is not None else []


def rollout_outcome(deployment: V1Deployment) -> Outcome | None:
    """``("succeeded"|"failed", message)`` once the rollout is over, else None (the same
    test as ``kubectl rollout status``)."""
    status = deployment.status
    generation = (deployment.metadata.generation if deployment.metadata else None) or 0
    if status is None or (status.observed_generation or 0) < generation:
        # The controller has not seen our change yet: its status and conditions are old.
        return None
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            detail = f": {condition.message}" if condition.message else ""
            return "failed", f"exceeded its progress deadline{detail}"
    desired = _desired(deployment)
    if (
        (status.updated_replicas or 0) == desired
        and (status.available_replicas or 0) == desired
        and (status.replicas or 0) <= desired
    ):
        return "succeeded", f"rolled out ({desired}/{desired} replicas updated and available)"
    return None


def rollout_progress(deployment: V1Deployment) -> str:
    status = deployment.status
    desired = _desired(deployment)
    updated = (status.updated_replicas if status else None) or 0
    available = (status.available_replicas if status else None) or 0
    return f"updated {updated}/{desired}, available {available}/{desired}"


def _desired(deployment: V1Deployment) -> int:
    replicas = deployment.spec.replicas if deployment.spec is not None else None
    return 1 if replicas is None else replicas


def job_outcome(job: V1Job) -> Outcome | None:
    status = job.status
    if status is None:
        return None
    if (status.succeeded or 0) >= 1:
        return "succeeded", "succeeded"
    for condition in status.conditions or []:
        if condition.type == "Failed" and condition.status == "True":
            detail = ": ".join(p for p in (condition.reason, condition.message) if p)
            return "failed", f"failed ({detail})" if detail else "failed"
        if condition.type == "Complete" and condition.status == "True":
            return "succeeded", "succeeded"
    if (status.failed or 0) >= 1:
        return "failed", f"failed ({status.failed} pod(s) failed)"
    return None


# --- names ------------------------------------------------------------------------------


def dns_label(value: str, limit: int = _DNS_LABEL_MAX) -> str:
    """``value`` as a DNS-1123 label: lowercase alphanumerics and '-', alphanumeric ends."""
    return re.sub(r"[^a-z0-9-]+", "-", value.lower())[:limit].strip("-")


def label_value(value: str) -> str:
    """``value`` as a Kubernetes label value (at most 63 of [-_.A-Za-z0-9], alphanumeric ends)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:_DNS_LABEL_MAX]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def job_name(deployment: str, phase: str, deployment_id: str, environment: str) -> str:
    """The step's Job: stable for one deployment id in one environment (so a retry finds
    it), distinct across them, and a valid DNS-1123 label of at most 63 characters."""
    digest = hashlib.sha256(f"{deployment_id}\n{environment}".encode()).hexdigest()[:10]
    suffix = f"-{dns_label(phase)}-{digest}"
    prefix = dns_label(deployment, _DNS_LABEL_MAX - len(suffix)) or "sdh"
    return prefix + suffix


# --- errors -----------------------------------------------------------------------------


@contextmanager
def _api(doing: str) -> Iterator[None]:
    """Turns what the client raises into a failure message naming what we were doing."""
    try:
        yield
    except ApiException as error:
        raise _StepError(f"{doing}: {describe(error)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise _StepError(f"{doing}: API server unreachable ({type(error).__name__})") from None
    except ValueError as error:  # an answer the client could not parse into its models
        raise _StepError(
            f"{doing}: unexpected answer from the API server ({error})"[:500]
        ) from None


def describe(error: ApiException) -> str:
    """``HTTP 403 Forbidden: <the API server's message>``."""
    text = f"HTTP {error.status} {error.reason or ''}".rstrip()
    try:
        body = json.loads(error.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        text += f": {str(body['message'])[:300]}"
    return text
