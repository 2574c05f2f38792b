// Browser tests in Debian's headless Chromium, driven by playwright-core.
//
// Needs: TODO_API_URL (the running server), FRONT_PORT (a free port for the
// page on another origin; the server must list http://127.0.0.1:FRONT_PORT
// in CORS_ALLOWED_ORIGINS), ARTIFACT_DIR (where the /docs screenshot goes).
// .ci/e2e sets all three.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";

const api = process.env.TODO_API_URL;
const frontPort = Number(process.env.FRONT_PORT);
const artifactDir = process.env.ARTIFACT_DIR;
assert.ok(api && frontPort && artifactDir, "TODO_API_URL, FRONT_PORT and ARTIFACT_DIR are required");
const frontOrigin = `http://127.0.0.1:${frontPort}`;
const here = dirname(fileURLToPath(import.meta.url));

let context;
let closeChromium;
let front;

before(async () => {
  const page = await readFile(join(here, "cors-client.html"));
  front = createServer((request, response) => {
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    response.end(page);
  });
  await new Promise((resolve) => front.listen(frontPort, "127.0.0.1", resolve));

  ({ context, close: closeChromium } = await launchChromium({ viewport: { width: 1280, height: 900 } }));
});

after(async () => {
  await closeChromium?.();
  await new Promise((resolve) => (front ? front.close(resolve) : resolve()));
});

test("/docs lists every task endpoint, with nothing loaded from outside", async () => {
  const page = await context.newPage();
  const requested = [];
  page.on("request", (request) => requested.push(request.url()));

  const response = await page.goto(`${api}/docs`);
  assert.equal(response.status(), 200);
  assert.equal(new URL(page.url()).pathname, "/docs/");

  // Swagger UI renders one block per operation once it has read the document.
  await page.locator(".opblock").first().waitFor({ timeout: 15_000 });
  const operations = await page.locator(".opblock-summary").evaluateAll((blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method")?.textContent.trim();
      const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
  for (const expected of [
    "GET /api/tasks",
    "POST /api/tasks",
    "DELETE /api/tasks",
    "GET /api/tasks/{id}",
    "PUT /api/tasks/{id}",
    "PATCH /api/tasks/{id}",
    "DELETE /api/tasks/{id}",
    "PATCH /api/tasks/{id}/complete",
    "POST /api/auth/signup",
    "POST /api/auth/signin",
    "GET /api/auth/me",
  ]) {
    assert.ok(operations.includes(expected), `${expected} is listed: ${operations.join(", ")}`);
  }
  assert.ok(await page.getByRole("button", { name: /Authorize/ }).isVisible());

  await mkdir(artifactDir, { recursive: true });
  await page.screenshot({ path: join(artifactDir, "docs.png"), fullPage: true });

  const outside = requested.filter((url) => !url.startsWith(api) && !url.startsWith("data:"));
  assert.deepEqual(outside, [], "every request stays on the API's origin");
  await page.close();
});

test("a page on another origin signs up, creates, lists and completes a task", async () => {
  const page = await context.newPage();
  await page.goto(`${frontOrigin}/`);
  assert.notEqual(new URL(api).origin, frontOrigin);

  const email = `browser-${Date.now()}@example.io`;
  const result = await page.evaluate(
    ([apiUrl, address]) => window.runScenario(apiUrl, address, "correct horse battery"),
    [api, email],
  );

  // Even a 401 is readable from the other origin, header included.
  assert.equal(result.unauthenticated.status, 401);
  assert.equal(result.unauthenticated.body.code, "not_authenticated");
  assert.equal(result.unauthenticated.wwwAuthenticate, "Bearer");

  assert.equal(result.signup.status, 201);
  assert.equal(result.signup.body.user.email, email);

  assert.equal(result.created.status, 201);
  const id = result.created.body.id;
  assert.equal(result.created.location, `/api/tasks/${id}`);
  assert.equal(result.created.body.completed, false);
  // The id the page sent comes back, and the browser may read it.
  assert.equal(result.created.requestId, "browser-POST-/api/tasks");

  assert.equal(result.listed.status, 200);
  assert.deepEqual(result.listed.body.map((task) => task.id), [id]);

  assert.equal(result.completed.status, 200);
  assert.equal(result.completed.body.completed, true);

  assert.equal(result.relisted.status, 200);
  assert.equal(result.relisted.body[0].completed, true);
  assert.equal(result.relisted.body[0].title, "Buy milk");
  await page.close();
});

test("a page on another origin pages a filtered list and edits under If-Match", async () => {
  const page = await context.newPage();
  await page.goto(`${frontOrigin}/`);
  const email = `browser-v2-${Date.now()}@example.io`;
  const result = await page.evaluate(
    ([apiUrl, address]) => window.runFrontEndScenario(apiUrl, address, "correct horse battery"),
    [api, email],
  );

  // The retried create answers the first answer again, and says so.
  const [first, retry] = result.retried;
  assert.equal(first.status, 201);
  assert.equal(first.replayed, null);
  assert.equal(retry.status, 201);
  assert.equal(retry.replayed, "true");
  assert.deepEqual(retry.body, first.body);
  assert.equal(retry.location, first.location);
  assert.equal(retry.etag, first.etag);

  // Three tasks labelled home, two a page; the page reads the total and the
  // link to the next one.
  assert.equal(result.firstPage.status, 200);
  assert.equal(result.firstPage.totalCount, "3");
  assert.deepEqual(result.firstPage.body.map((task) => task.title), ["Call mum", "Pay rent"]);
  assert.ok(result.nextPath?.startsWith("/api/tasks?"), `Link: ${result.firstPage.link}`);
  assert.equal(result.secondPage.status, 200);
  assert.equal(result.secondPage.totalCount, "3");
  assert.equal(result.secondPage.link, null);
  assert.deepEqual(result.secondPage.body.map((task) => task.title), ["Water plants"]);

  // The editor's ETag lets its patch through once; a second tab's patch
  // with the same, now stale, ETag is refused and readable.
  assert.match(result.loaded.etag ?? "", /^"\d+"$/);
  assert.equal(result.edited.status, 200);
  assert.equal(result.edited.body.title, "Pay rent today");
  assert.equal(result.edited.body.due_at, "2027-01-01T08:00:00.000000Z");
  assert.notEqual(result.edited.etag, result.loaded.etag);
  assert.equal(result.stale.status, 412);
  assert.equal(result.stale.body.code, "precondition_failed");
  await page.close();
});
