"""POST /tiles/token: a key (in the Authorization header) exchanged for a tile token.

For map clients that cannot set headers: they put the token, not their key, into tile URLs
(tiles.tokens explains what a token may do). The key itself never has to appear in a URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from geo.auth import Principal, require
from geo.db import get_session
from geo.http import json_body, model
from geo.openapi import errors
from geo.routing import api_router
from tiles import service

router = api_router(tags=["tiles"])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layers: list[str] = Field(min_length=1, description="the collections the token may read")


async def token_request(request: Request) -> TokenIn:
    """Dependency: the JSON body, read and checked before the (sync) handler runs."""
    return model(TokenIn, await json_body(request))


@router.post(
    "/tiles/token",
    summary="Exchange an API key (Authorization header) for a short-lived, read-only tile token",
    responses=errors(404),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TokenIn.model_json_schema()}},
        }
    },
)
def create_tile_token(
    body: TokenIn = Depends(token_request),
    who: Principal = Depends(require("viewer")),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    return service.issue_token(session, who, body.layers)
