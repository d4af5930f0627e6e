"""The OAuth2 password flow's form and token response (RFC 6749, section 4.3), as named
schemas: FastAPI's `OAuth2PasswordRequestForm` would appear in the OpenAPI document as
`Body_<operation id>`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from backend.models.references import NotAReference


class TokenRequest(BaseModel):
    """`application/x-www-form-urlencoded`, as OAuth2 clients and Swagger's Authorize send it.
    An empty or missing `username` or `password` is wrong credentials (401)."""

    # FastAPI's form parsing hands a field sent empty (`password=`) to validation as not sent
    # at all. So `username` and `password` default to "": empty or missing, they are wrong
    # credentials (401) like any other, never a 422 "Field required" for a field that was
    # sent, and the schema says they may be empty or absent (issue 25, item 4). `grant_type`
    # likewise: empty is absent, so its pattern allows "".
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
