"""RFC 9457 problem details: the one place where errors become HTTP answers."""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import DomainError, ErrorKind

log = logging.getLogger("sdh.api")

PROBLEM_JSON = "application/problem+json"

_STATUS = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.FORBIDDEN: 403,
}
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    503: "Service unavailable",
}
_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://sdh.dev/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class ApiProblemError(Exception):
    """Raised by the edge itself (authentication, authorisation, lookups)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


class ReadModelsBehindError(Exception):
    """The command is stored, but the read models did not include it in time."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    # Pydantic's error entries can hold the offending input (any size) and exception
    # objects; return where and what, which is what a client can act on.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in errors[:50]
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return problem(_STATUS[exc.kind], exc.code, exc.detail, **exc.extra)

    @app.exception_handler(ApiProblemError)
    async def _api(_: Request, exc: ApiProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem(exc.status, exc.code, exc.detail, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean(list(exc.errors()))
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return problem(422, "invalid_input", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # A body that cannot be decoded (bad UTF-8, absurd nesting or numbers) is
            # invalid input like any other: the contract answers those with 422.
            return problem(422, "invalid_input", f"body: {exc.detail}")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return problem(
            exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None
        )

    @app.exception_handler(ReadModelsBehindError)
    async def _behind(_: Request, exc: ReadModelsBehindError) -> JSONResponse:
        log.warning("read models behind", extra={"position": exc.position})
        return JSONResponse(
            {
                "status": "accepted",
                "position": exc.position,
                "detail": "the change is stored; the read models have not caught up yet, "
                "so read it again shortly",
            },
            status_code=202,
        )

    @app.exception_handler(OperationalError)
    async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        # A lock timeout or a lost database connection: nothing was written; retry.
        log.warning("database unavailable", extra={"error": str(exc)})
        return problem(
            503,
            "unavailable",
            "the event store is busy or unreachable; nothing was changed, retry shortly",
            headers={"Retry-After": "1"},
        )
