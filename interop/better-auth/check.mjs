// Interop check: a real Better Auth server (the version pinned in
// package.json) signs a user up and issues a JWT with its JWT plugin, once
// per key algorithm it offers; the todo-api binary, pointed at that server,
// must accept the token end to end and refuse a tampered copy.
//
//   node check.mjs <path to the todo-api binary>
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const apiBinary = process.argv[2];
assert.ok(apiBinary, "usage: node check.mjs <todo-api binary>");
const betterAuthVersion = JSON.parse(
  readFileSync(new URL("./node_modules/better-auth/package.json", import.meta.url)),
).version;

/** A Better Auth server on a free port, as a front end would run it. */
async function startBetterAuth(alg) {
  let handle;
  const server = http.createServer((req, res) => handle(req, res));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const baseURL = `http://127.0.0.1:${server.address().port}`;
  const auth = betterAuth({
    baseURL,
    // Only encrypts the private key in this run's in-memory store.
    secret: "interop-only-secret-interop-only-secret",
    database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
    emailAndPassword: { enabled: true },
    // No options for the default (EdDSA), as most front ends configure it.
    plugins: [alg === "EdDSA" ? jwt() : jwt({ jwks: { keyPairConfig: { alg } } })],
  });
  handle = toNodeHandler(auth);
  return { server, baseURL };
}

async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function waitFor(url) {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not come up`);
}

function decodePart(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

async function check(alg, work) {
  const { server, baseURL } = await startBetterAuth(alg);
  let api;
  try {
    // Sign up as the front end would, then fetch the plugin's token with
    // the session cookie.
    const email = `ada-${alg.toLowerCase()}@example.io`;
    const signUp = await fetch(`${baseURL}/api/auth/sign-up/email`, {
      method: "POST",
      // A browser on the front end's own origin sends it; Better Auth
      // refuses cross-site-looking requests without one.
      headers: { "content-type": "application/json", origin: baseURL },
      body: JSON.stringify({ email, password: "correct horse battery", name: "Ada" }),
    });
    assert.equal(signUp.status, 200, `sign-up: ${await signUp.clone().text()}`);
    const cookie = signUp.headers.get("set-cookie").split(";")[0];
    const { token } = await (await fetch(`${baseURL}/api/auth/token`, { headers: { cookie } })).json();

    const [header, payload] = token.split(".").map((part, index) => (index < 2 ? decodePart(part) : part));
    assert.equal(header.alg, alg);
    assert.ok(header.kid, "Better Auth's header carries a kid");
    assert.equal(payload.iss, baseURL);
    assert.equal(payload.aud, baseURL);
    assert.equal(payload.exp - payload.iat, 15 * 60);
    assert.equal(payload.email, email);

    const port = await freePort();
    api = spawn(apiBinary, [], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: `sqlite://${join(work, `todo-${alg}.sqlite3`)}?mode=rwc`,
        JWT_SECRET: "interop-jwt-secret-interop-jwt-secret-0123",
        PORT: String(port),
        AUTH_JWKS_URL: `${baseURL}/api/auth/jwks`,
        AUTH_ISSUER: baseURL,
        AUTH_AUDIENCE: baseURL,
        RUST_LOG: "warn",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const apiURL = `http://127.0.0.1:${port}`;
    await waitFor(`${apiURL}/health`);
    const bearer = { authorization: `Bearer ${token}` };

    const me = await fetch(`${apiURL}/api/auth/me`, { headers: bearer });
    assert.equal(me.status, 200, `GET /api/auth/me: ${await me.clone().text()}`);
    const profile = await me.json();
    assert.equal(profile.email, email);
    assert.match(profile.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    const created = await fetch(`${apiURL}/api/tasks`, {
      method: "POST",
      headers: { ...bearer, "content-type": "application/json" },
      body: JSON.stringify({ title: `signed in with Better Auth (${alg})` }),
    });
    assert.equal(created.status, 201);
    const list = await (await fetch(`${apiURL}/api/tasks`, { headers: bearer })).json();
    assert.equal(list.length, 1);

    // The same token with another subject in its payload: signature broken.
    const [h, p, s] = token.split(".");
    const forged = { ...decodePart(p), sub: "someone-else" };
    const tampered = `${h}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${s}`;
    const refused = await fetch(`${apiURL}/api/auth/me`, {
      headers: { authorization: `Bearer ${tampered}` },
    });
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, "invalid_token");

    console.log(`ok: Better Auth ${betterAuthVersion} ${alg} token accepted, tampered copy refused`);
  } finally {
    api?.kill("SIGTERM");
    server.close();
    server.closeAllConnections();
  }
}

const work = mkdtempSync(join(tmpdir(), "better-auth-interop-"));
try {
  for (const alg of ["EdDSA", "ES256", "RS256"]) {
    await check(alg, work);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
