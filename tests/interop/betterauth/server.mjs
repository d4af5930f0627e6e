// A real Better Auth server for tests/interop/test_better_auth.py.
//
// better-auth with its JWT plugin at default settings (EdDSA/Ed25519 keys, JWKS at
// /api/auth/jwks, iss = aud = baseURL, 15-minute tokens, sub = user id) and email/password
// sign-in, on the in-memory database adapter (no native build, no files). Listens on
// 127.0.0.1 on a free port and prints one JSON line {"baseURL": ...} when ready.
//
// Two test-only control routes, outside Better Auth's /api/auth:
//   POST /test/expired-token {"sub": ...}  a token signed by the plugin's signJWT with the
//        default claims but issued 20 minutes ago (so past its default 15-minute expiry)
//   POST /test/rotate                      drop every key; the next token mints a new one
import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const db = { user: [], session: [], account: [], verification: [], jwks: [] };

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  const baseURL = `http://127.0.0.1:${port}`;
  const auth = betterAuth({
    baseURL,
    secret: process.env.BETTER_AUTH_SECRET,
    database: memoryAdapter(db),
    emailAndPassword: { enabled: true },
    telemetry: { enabled: false },
    plugins: [jwt()],
  });
  const handler = toNodeHandler(auth);

  server.on("request", async (req, res) => {
    try {
      if (req.method === "POST" && req.url === "/test/rotate") {
        db.jwks.splice(0, db.jwks.length);
        res.writeHead(204).end();
        return;
      }
      if (req.method === "POST" && req.url === "/test/expired-token") {
        let body = "";
        for await (const chunk of req) body += chunk;
        const { sub } = JSON.parse(body);
        const iat = Math.floor(Date.now() / 1000) - 20 * 60;
        const { token } = await auth.api.signJWT({
          body: { payload: { sub, iat, exp: iat + 15 * 60 } },
        });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ token }));
        return;
      }
      await handler(req, res);
    } catch (error) {
      console.error(error);
      res.writeHead(500).end();
    }
  });
  console.log(JSON.stringify({ baseURL, betterAuthVersion: process.env.npm_package_version }));
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
