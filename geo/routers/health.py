"""Health: `/health` as before (database and PostGIS versions), `/health/live` and
`/health/ready` for load balancers and orchestrators (geo.health), `/metrics` for Prometheus."""

from __future__ import annotations

from fastapi import Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from geo.auth import Principal, require
from geo.db import server_info
from geo.errors import DATABASE_RETRY_AFTER_SECONDS, error_body
from geo.health import readiness
from geo.openapi import errors, returns
from geo.routing import api_router

router = api_router(tags=["service"])


@router.get("/health", summary="Database and PostGIS status", responses=errors(503))
def health() -> JSONResponse:
    try:
        info = server_info()
    except Exception as exc:  # the point of a health check is to report, not raise
        return JSONResponse(
            error_body("Unavailable", f"database unreachable: {type(exc).__name__}"),
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": info})


@router.get("/health/live", summary="Liveness: the process answers (no database asked)")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/health/ready",
    summary="Readiness: a writable primary, migrations current, replicas within the lag limit",
    responses=errors(503),
)
def ready() -> JSONResponse:
    result = readiness()
    if result.ready:
        return JSONResponse({"status": "ready", "checks": result.checks})
    failed = ", ".join(name for name, check in result.checks.items() if not check["ok"])
    return JSONResponse(
        error_body("NotReady", f"not ready: {failed}", result.checks),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process (admin keys)",
    response_class=Response,
    responses={
        **returns({CONTENT_TYPE_LATEST.split(";")[0]: None}, "the Prometheus text format"),
        **errors(401, 403),
    },
)
def metrics(_: Principal = Depends(require("admin"))) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
