"""A real JWKS endpoint for tests: an http.server thread on 127.0.0.1 serving whatever key set
the test puts in it, able to fail (500), hang, or count how often it was asked."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jose import jwk, jwt

from backend.auth import eddsa
from backend.auth.eddsa import Ed25519Key
from tests.serving import serve_in_thread

# Signing EdDSA test tokens needs the key type python-jose lacks.
eddsa.register()


@dataclass
class SigningKey:
    """A private key, its algorithm, and the public JWK the server publishes for it."""

    algorithm: str
    private: Any
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def generate(cls, algorithm: str, kid: str | None = None) -> SigningKey:
        private: Any
        if algorithm == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(algorithm)
        return cls(algorithm, private, kid or uuid.uuid4().hex[:12])

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        if self.algorithm == "EdDSA":
            public = Ed25519Key(self.private.public_key(), "EdDSA").to_dict()
        else:
            public = jwk.construct(self.public_pem().decode(), self.algorithm).to_dict()
        public = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in public.items()}
        public.pop("alg", None)  # like Better Auth: no `alg` member
        return {**public, "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        key: Any = self.private
        if self.algorithm != "EdDSA":
            key = self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        return jwt.encode(
            claims, key, algorithm=self.algorithm, headers={"kid": self.kid, **headers}
        )


class JwksServer:
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | error | hang
        self.hang_seconds = 5.0
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if server.mode == "hang":
                    time.sleep(server.hang_seconds)
                if server.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/api/auth/jwks"
        self._thread = serve_in_thread(self._httpd)

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [k.jwk() for k in keys]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
