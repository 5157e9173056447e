"""Platform catalog: environments, applications, pipelines, images."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from api.deps import ManageApplications, ManagePlatform, ReadAll, RuntimeDep, settle
from api.problems import ApiProblemError
from api.schemas import ApplicationIn, EnvironmentIn, ImageIn, PipelineIn

router = APIRouter(tags=["platform catalog"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


@router.post("/environments", status_code=status.HTTP_201_CREATED)
def create_environment(body: EnvironmentIn, runtime: RuntimeDep, who: ManagePlatform) -> Any:
    outcome = runtime.hub.register_environment(
        body.name, body.cluster, body.namespace, body.description, actor=who.name
    )
    settle(runtime, outcome.position)
    return runtime.catalog.environment(body.name)


@router.get("/environments")
def list_environments(
    runtime: RuntimeDep, _: ReadAll, limit: Limit = 100, offset: Offset = 0
) -> list[dict[str, Any]]:
    return runtime.catalog.environments(limit, offset)


@router.get("/environments/{name}")
def get_environment(name: str, runtime: RuntimeDep, _: ReadAll) -> Any:
    found = runtime.catalog.environment(name)
    if found is None:
        raise ApiProblemError(404, "not_found", f"environment {name!r} not found")
    return found


@router.post("/applications", status_code=status.HTTP_201_CREATED)
def create_application(body: ApplicationIn, runtime: RuntimeDep, who: ManageApplications) -> Any:
    outcome = runtime.hub.register_application(
        body.name, body.project, body.description, actor=who.name
    )
    settle(runtime, outcome.position)
    return runtime.catalog.application(body.name)


@router.get("/applications")
def list_applications(
    runtime: RuntimeDep,
    _: ReadAll,
    search: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return runtime.catalog.applications(search, limit, offset)


@router.get("/applications/{app}")
def get_application(app: str, runtime: RuntimeDep, _: ReadAll) -> Any:
    found = runtime.catalog.application(app)
    if found is None:
        raise ApiProblemError(404, "not_found", f"application {app!r} not found")
    return found


@router.put("/applications/{app}/pipelines/{environment}")
def set_pipeline(
    app: str, environment: str, body: PipelineIn, runtime: RuntimeDep, who: ManageApplications
) -> Any:
    outcome = runtime.hub.set_pipeline(
        app,
        environment,
        body.target.as_dict(),
        None if body.pre_deploy is None else body.pre_deploy.as_dict(),
        None if body.post_deploy is None else body.post_deploy.as_dict(),
        actor=who.name,
    )
    settle(runtime, outcome.position)
    found = runtime.catalog.application(app) or {}
    return next(
        (p for p in found.get("pipelines", []) if p["environment"] == environment),
        {"environment": environment, **body.model_dump(exclude_none=True)},
    )


@router.post("/applications/{app}/images", status_code=status.HTTP_201_CREATED)
def register_image(app: str, body: ImageIn, runtime: RuntimeDep, who: ManageApplications) -> Any:
    outcome = runtime.hub.register_image(
        app, body.workflow, body.image, body.commit, who.name, digest=body.digest
    )
    settle(runtime, outcome.position)
    return {
        "application": app,
        "workflow": body.workflow,
        "image": body.image,
        "commit": body.commit,
    }


@router.get("/applications/{app}/images")
def list_images(
    app: str,
    runtime: RuntimeDep,
    _: ReadAll,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    if runtime.catalog.application(app) is None:
        raise ApiProblemError(404, "not_found", f"application {app!r} not found")
    return runtime.catalog.images(app, workflow, limit, offset)
