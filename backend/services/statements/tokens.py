"""What is stored of a credential a URL or a header carries (an invitation, a feed token, an app
password, a stream ticket, an email confirmation): its SHA-256, never the credential itself."""

import hashlib


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
