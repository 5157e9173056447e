"""Applications: what the vendor builds, where each deploys (pipelines), and its built images."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import deterministic_id, evolve, stable_topics
from domain.errors import DuplicateError, InvalidTargetError
from domain.ids import check_name

TARGET_KINDS = ("simulate", "webhook", "kubernetes")
MAX_SIMULATED_SECONDS = 3600.0


def check_target(target: dict[str, Any], field: str = "target") -> dict[str, Any]:
    """A deploy target names at most one adapter; empty means the simulated one."""
    if not target:
        return {}
    if len(target) != 1 or next(iter(target)) not in TARGET_KINDS:
        raise InvalidTargetError(
            f"{field} must have exactly one of {', '.join(TARGET_KINDS)}", field=field
        )
    kind, spec = next(iter(target.items()))
    if not isinstance(spec, dict):
        raise InvalidTargetError(f"{field}.{kind} must be an object", field=field)
    if kind == "simulate":
        outcome = spec.get("outcome", "succeeded")
        seconds = spec.get("seconds", 0.0)
        if outcome not in ("succeeded", "failed"):
            raise InvalidTargetError(f"{field}.simulate.outcome must be succeeded or failed")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise InvalidTargetError(f"{field}.simulate.seconds must be a number")
        if not 0 <= seconds <= MAX_SIMULATED_SECONDS:
            raise InvalidTargetError(
                f"{field}.simulate.seconds must be between 0 and {MAX_SIMULATED_SECONDS:g}"
            )
    elif kind == "webhook":
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidTargetError(f"{field}.webhook.url must be an http(s) URL")
        if not isinstance(spec.get("secret"), str) or not spec["secret"]:
            raise InvalidTargetError(f"{field}.webhook.secret must be a non-empty string")
    else:
        if not isinstance(spec.get("deployment"), str) or not spec["deployment"]:
            raise InvalidTargetError(f"{field}.kubernetes.deployment must be a non-empty string")
        command = spec.get("command")
        if command is not None and (
            not isinstance(command, list) or not all(isinstance(c, str) for c in command)
        ):
            raise InvalidTargetError(f"{field}.kubernetes.command must be a list of strings")
    return target


@stable_topics("application")
class Application(Aggregate):
    @staticmethod
    def create_id(name: str) -> UUID:
        return deterministic_id("application", name)

    @classmethod
    def register(cls, name: str, project: str, description: str, actor: str) -> Application:
        check_name(name, "name")
        return cls(name=name, project=project, description=description, actor=actor)

    @event("ApplicationRegistered")
    def __init__(self, name: str, project: str, description: str, actor: str) -> None:
        self.name = name
        self.project = project
        self.description = description
        # environment -> {"target": {...}, "pre_deploy": {...} | None, "post_deploy": ...}
        self.pipelines: dict[str, dict[str, Any]] = {}
        # workflow -> images in registration order
        self.workflows: dict[str, list[str]] = {}

    def set_pipeline(
        self,
        environment: str,
        target: dict[str, Any],
        pre_deploy: dict[str, Any] | None,
        post_deploy: dict[str, Any] | None,
        actor: str,
    ) -> bool:
        check_target(target)
        if pre_deploy is not None:
            check_target(pre_deploy, "pre_deploy")
        if post_deploy is not None:
            check_target(post_deploy, "post_deploy")
        wanted = {"target": target, "pre_deploy": pre_deploy, "post_deploy": post_deploy}
        if self.pipelines.get(environment) == wanted:
            return False
        self._pipeline_set(
            environment=environment,
            target=target,
            pre_deploy=pre_deploy,
            post_deploy=post_deploy,
            actor=actor,
        )
        return True

    @event("PipelineSet")
    def _pipeline_set(
        self,
        environment: str,
        target: dict[str, Any],
        pre_deploy: dict[str, Any] | None,
        post_deploy: dict[str, Any] | None,
        actor: str,
    ) -> None:
        self.pipelines[environment] = {
            "target": target,
            "pre_deploy": pre_deploy,
            "post_deploy": post_deploy,
        }

    def register_image(
        self, workflow: str, image: str, commit: str, actor: str, digest: str | None = None
    ) -> None:
        if image in self.workflows.get(workflow, []):
            raise DuplicateError(
                f"image {image!r} is already registered for workflow {workflow!r} of {self.name!r}"
            )
        self._image_registered(
            workflow=workflow, image=image, commit=commit, digest=digest, actor=actor
        )

    @event("ImageRegistered")
    def _image_registered(
        self, workflow: str, image: str, commit: str, digest: str | None, actor: str
    ) -> None:
        self.workflows.setdefault(workflow, []).append(image)

    def has_image(self, workflow: str, image: str) -> bool:
        return image in self.workflows.get(workflow, [])

    def workflows_of(self, image: str) -> list[str]:
        return [wf for wf, images in self.workflows.items() if image in images]


def _image_registered_v1_to_v2(state: dict[str, Any]) -> None:
    # v2 added the image's content digest; images registered before it have none.
    state.setdefault("digest", None)


evolve(getattr(Application, "ImageRegistered"), 2, upcast_v1_v2=_image_registered_v1_to_v2)  # noqa: B009
