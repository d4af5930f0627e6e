"""`python -m backend token`: a bearer token for a user id, for curl and scripts."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from backend.cli.common import DEV_HELP, load_settings

if TYPE_CHECKING:
    from backend.cli.common import Subcommands


def cmd_token(args: argparse.Namespace) -> int:
    from backend.auth.tokens import issue_token

    settings = load_settings(args.dev)
    # External-style tokens (the account is provisioned on first use), so the API holds them
    # to JWT_MAX_TOKEN_LIFETIME_SECONDS: never print one it would refuse.
    cap = settings.jwt_max_token_lifetime_seconds
    if args.minutes is not None and args.minutes * 60 > cap:
        print(
            f"error: --minutes {args.minutes} is longer than JWT_MAX_TOKEN_LIFETIME_SECONDS "
            f"({cap} s = {cap // 60} minutes), so the API would refuse the token; raise that "
            "setting for longer-lived tokens",
            file=sys.stderr,
        )
        return 2
    seconds = args.minutes * 60 if args.minutes else settings.access_token_expire_minutes * 60
    print(issue_token(args.user_id, settings, expires_in=min(seconds, cap), local=False))
    return 0


def add_token(sub: Subcommands) -> None:
    token = sub.add_parser(
        "token",
        help="mint a bearer token for a user id",
        description="Print an HS256 bearer token for USER_ID, signed with JWT_SECRET, for curl "
        "and scripts: export TOKEN=$(python -m backend token alice --dev). The account is "
        "created on the token's first use.",
    )
    token.add_argument("user_id", help="the token's `sub`")
    token.add_argument(
        "--minutes",
        type=int,
        default=None,
        help="lifetime (default ACCESS_TOKEN_EXPIRE_MINUTES, at most "
        "JWT_MAX_TOKEN_LIFETIME_SECONDS)",
    )
    token.add_argument("--dev", action="store_true", help=DEV_HELP)
    token.set_defaults(func=cmd_token)


def cmd_push_key(args: argparse.Namespace) -> int:
    from backend.keys import new_vapid_key, vapid_public_key

    private = new_vapid_key()
    print(f"VAPID_PRIVATE_KEY={private}")
    print(f"# public key (GET /api/push/public-key serves it): {vapid_public_key(private)}")
    return 0


def add_push_key(sub: Subcommands) -> None:
    push_key = sub.add_parser(
        "push-key",
        help="print a new VAPID key pair for Web Push",
        description="Print a new VAPID private key as a VAPID_PRIVATE_KEY= line (keep it as a "
        "secret; changing it ends every browser's subscription) and its public key.",
    )
    push_key.set_defaults(func=cmd_push_key)
