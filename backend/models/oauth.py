"""The OAuth2 password flow's form and token response (RFC 6749 4.3) as named schemas (FastAPI's
own form would be `Body_<operation id>` in the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from backend.models.references import NotAReference


class TokenRequest(BaseModel):
    """`application/x-www-form-urlencoded`, as OAuth2 clients and Swagger's Authorize send it.
    An empty or missing `username` or `password` is wrong credentials (401)."""

    # FastAPI's form parsing hands a field sent empty as not sent: so each defaults to "" (a
    # 401 like any wrong credentials, never a 422 for a field that was sent).
    grant_type: str | None = Field(
        default=None,
        pattern="^(password)?$",
        description="`password`, if sent.",
        examples=["password"],
    )
    username: str = Field(
        default="", description="The account's email.", examples=["ada@example.com"]
    )
    password: str = Field(default="", json_schema_extra={"format": "password"})
    scope: str = Field(default="", description="Ignored: a token grants the whole account.")
    client_id: Annotated[str, NotAReference("an OAuth client's id, ignored")] | None = Field(
        default=None, description="Ignored."
    )
    client_secret: str | None = Field(
        default=None, description="Ignored.", json_schema_extra={"format": "password"}
    )


class TokenResponse(BaseModel):
    """The bare OAuth2 token response (no `data` envelope), as OAuth2 clients expect."""

    access_token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    token_type: Literal["bearer"] = Field(examples=["bearer"])
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])
