"""Who is calling: bearer-token verification (shared secret, JWKS, EdDSA), the verified-claims
cache, the built-in issuer and password hashing."""
