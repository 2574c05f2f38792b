#!/usr/bin/env node
// Live-stream delivery probe for issue 14 (contract section 7).
//
// Opens --streams-per-user event streams (`GET /api/tasks/events`) for
// every user in --users against --stream-url, waits until each has answered 200
// and sent its first bytes, then writes through --write-url every 50-100 ms
// and times, for every stream of the written user, how long after the
// write's response the matching event arrived. Prints one JSON line on
// stdout; exits 1 if any (write, stream) pair saw no event, a stream ended
// early, or a write failed: a lost event is the thing being measured, so
// it fails the run rather than becoming a footnote.
//
//   node bench/streams.mjs --stream-url http://127.0.0.1:18192 \
//     --write-url http://127.0.0.1:18191 --users probe-users.txt --duration 20
//
// --users holds one line per user: "<token> <probe task id>", or the token
// alone for a user whose streams are opened and held but never probed
// (bench/streams.sh gives it the users `mixed` writes for). The probe task
// must be written by nothing but this tool: each probe PATCHes its title to
// a fresh nonce, and the event is recognised by that task id and title. A
// user has at most one probe in flight, so two probes of one task are
// never folded into one event (a stream reads the feed, which gives a task
// once, at its latest state). Nothing may write a probed user's other
// tasks through the streams' instance either: that write would wake the
// streams there, and they would find the probe's change in the feed
// without it ever crossing from the writes' instance.
//
// Built on node:http rather than fetch: a thousand long responses are a
// thousand sockets either way, and node:http hands over raw chunks with
// nothing in between, which keeps the load generator's share of the two
// shared cores small.
//
// Signals: with --wait-for-go, probing starts on SIGUSR2 (SIGUSR1 belongs
// to Node's inspector); SIGTERM or SIGINT stops probing at any time, and
// the tool then waits for the probes in flight, closes the streams and
// reports. bench/streams.sh drives it this way so that wrk's windows and
// the probe line up.

import http from "node:http";
import fs from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

const { values: options } = parseArgs({
  options: {
    "stream-url": { type: "string" },
    "write-url": { type: "string" },
    users: { type: "string" },
    "streams-per-user": { type: "string", default: "5" },
    "min-interval-ms": { type: "string", default: "50" },
    "max-interval-ms": { type: "string", default: "100" },
    // How long after a write's response a stream may take before its
    // event counts as missed. The contract allows one second across
    // instances; five leaves room for a stalled shared machine without
    // letting a lost event pass as slow.
    "timeout-ms": { type: "string", default: "5000" },
    duration: { type: "string", default: "0" },
    "open-concurrency": { type: "string", default: "50" },
    // How long an open that is refused with 429 too_many_streams is tried
    // again. A server learns that a client closed a stream only when it
    // next writes to it (an event, or the heartbeat, every 15 s by
    // default), so the streams of a run that just ended can hold their
    // user's slots for that long. 0: a 429 fails at once.
    "open-retry-seconds": { type: "string", default: "0" },
    "ready-file": { type: "string" },
    "wait-for-go": { type: "boolean", default: false },
    "samples-file": { type: "string" },
    label: { type: "string", default: "streams" },
  },
});

function required(name) {
  const value = options[name];
  if (value === undefined || value === "") fail(`--${name} is required`);
  return value;
}

function whole(name) {
  const value = Number(options[name]);
  if (!Number.isFinite(value) || value < 0) fail(`--${name} must be a number >= 0`);
  return value;
}

function fail(message) {
  process.stderr.write(`streams.mjs: ${message}\n`);
  process.exit(1);
}

const streamUrl = new URL("/api/tasks/events", required("stream-url"));
const writeBase = new URL(options["write-url"] ?? options["stream-url"]);
const streamsPerUser = whole("streams-per-user");
const minInterval = whole("min-interval-ms");
const maxInterval = Math.max(minInterval, whole("max-interval-ms"));
const timeoutMs = whole("timeout-ms");
const duration = whole("duration");
const openConcurrency = Math.max(1, whole("open-concurrency"));
const openRetryMs = whole("open-retry-seconds") * 1000;

const users = fs
  .readFileSync(required("users"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line, index) => {
    const [token, taskId = null, extra] = line.trim().split(/\s+/);
    if (extra !== undefined) fail(`--users line ${index + 1}: want "<token> [<probe task id>]"`);
    return { index, token, taskId, streams: [], pending: null };
  });
const probed = users.filter((user) => user.taskId !== null);
if (probed.length === 0) fail("--users names no probe task");

// One socket per stream, none reused: a stream's connection ends with it.
const streamAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
// The writes reuse a few connections, as a client would. An idle one is
// dropped after 2 s, before the server's keep-alive (KEEP_ALIVE_SECONDS,
// default 5) closes it: a request sent on a connection the server is closing at
// that moment fails with "socket hang up", which is the client's race and
// not the server's fault.
const writeAgent = new http.Agent({ keepAlive: true, maxSockets: 16, timeout: 2000 });

const counts = {
  probes: 0, // writes whose every stream has been accounted for
  pairs: 0, // (write, stream) pairs expected
  delivered: 0,
  missed: 0,
  duplicates: 0, // the same probe's event twice on one stream
  stray: 0, // a probe's title arriving after its probe was closed
  skipped: 0, // ticks that found every user with a probe in flight
  write_errors: 0,
  streams_lost: 0,
  events: 0, // every event the streams carried, the `mixed` load's included
};
const latencies = []; // event arrival - write response, ms, one per delivered pair
const writeTimes = []; // write request to response, ms
let stopping = false;
let closing = false;

// --- streams -------------------------------------------------------------------

function openStream(user, slot) {
  return new Promise((resolve, reject) => {
    const stream = { user, slot, buffer: "", request: null, open: false };
    const request = http.get(
      streamUrl,
      {
        agent: streamAgent,
        headers: { Authorization: `Bearer ${user.token}`, Accept: "text/event-stream" },
      },
      (response) => {
        if (response.statusCode !== 200) {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk) => (body += chunk));
          response.on("end", () => {
            user.streams.splice(user.streams.indexOf(stream), 1);
            const error = new Error(`stream ${user.index}/${slot}: ${response.statusCode} ${body}`);
            error.status = response.statusCode;
            reject(error);
          });
          return;
        }
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          const now = performance.now();
          if (!stream.open) {
            // The server sends a comment as soon as the stream opens: the
            // first bytes say the stream is live, not merely accepted.
            stream.open = true;
            resolve(stream);
          }
          receive(stream, chunk, now);
        });
        const ended = () => {
          if (closing) return;
          counts.streams_lost += 1;
          process.stderr.write(`streams.mjs: stream ${user.index}/${slot} ended early\n`);
          if (!stream.open) reject(new Error(`stream ${user.index}/${slot} ended before its first bytes`));
        };
        response.on("end", ended);
        response.on("error", ended);
      },
    );
    request.on("error", (error) => {
      if (closing) return;
      if (stream.open) {
        counts.streams_lost += 1;
        process.stderr.write(`streams.mjs: stream ${user.index}/${slot}: ${error.message}\n`);
      } else {
        reject(error);
      }
    });
    request.setTimeout(30_000, () => {
      if (!stream.open) request.destroy(new Error(`stream ${user.index}/${slot}: no first bytes in 30 s`));
    });
    stream.request = request;
    user.streams.push(stream);
  });
}

// Splits the text into events (a blank line ends one) and looks only at
// those that name the user's probe task: the `mixed` load's events pass by
// without a JSON parse.
function receive(stream, chunk, now) {
  stream.buffer += chunk;
  let end;
  while ((end = stream.buffer.indexOf("\n\n")) !== -1) {
    const block = stream.buffer.slice(0, end);
    stream.buffer = stream.buffer.slice(end + 2);
    if (block.startsWith(":") && !block.includes("\n")) continue; // a comment alone
    counts.events += 1;
    if (stream.user.taskId === null || !block.includes(stream.user.taskId)) continue;
    const data = block
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
      .join("\n");
    if (data === "") continue;
    const change = JSON.parse(data);
    if (change.op !== "upsert" || change.task?.id !== stream.user.taskId) continue;
    arrived(stream, change.task.title, now);
  }
}

// --- the probe -------------------------------------------------------------------

let nonceCounter = 0;

function arrived(stream, title, now) {
  const probe = stream.user.pending;
  if (!probe || probe.title !== title) {
    if (title.startsWith("probe ")) counts.stray += 1;
    return;
  }
  if (probe.arrivals[stream.slot] !== null) {
    counts.duplicates += 1;
    return;
  }
  probe.arrivals[stream.slot] = now;
  if (probe.responseAt !== null && probe.arrivals.every((time) => time !== null)) finish(probe);
}

function finish(probe) {
  if (probe.done) return;
  probe.done = true;
  clearTimeout(probe.timer);
  counts.probes += 1;
  counts.pairs += probe.arrivals.length;
  for (const time of probe.arrivals) {
    if (time === null) {
      counts.missed += 1;
    } else {
      counts.delivered += 1;
      // Can be below zero on one instance: the stream may be woken, read
      // the feed and send the event before the write's answer reaches us.
      latencies.push(time - probe.responseAt);
    }
  }
  if (probe.arrivals.includes(null)) {
    process.stderr.write(
      `streams.mjs: user ${probe.user.index}: ${probe.arrivals.filter((t) => t === null).length} ` +
        `of ${probe.arrivals.length} streams saw no event for "${probe.title}" within ${timeoutMs} ms\n`,
    );
  }
  probe.user.pending = null;
  settled();
}

function probeOnce() {
  const idle = probed.filter((user) => user.pending === null);
  if (idle.length === 0) {
    counts.skipped += 1;
    return;
  }
  const user = idle[Math.floor(Math.random() * idle.length)];
  nonceCounter += 1;
  const probe = {
    user,
    title: `probe ${process.pid}-${nonceCounter}-${Math.random().toString(36).slice(2, 10)}`,
    sentAt: performance.now(),
    responseAt: null,
    arrivals: new Array(user.streams.length).fill(null),
    timer: null,
    done: false,
  };
  // Pending before the request leaves: on one instance the event can come
  // before the answer.
  user.pending = probe;
  const body = JSON.stringify({ title: probe.title });
  const request = http.request(
    new URL(`/api/tasks/${user.taskId}`, writeBase),
    {
      method: "PATCH",
      agent: writeAgent,
      headers: {
        Authorization: `Bearer ${user.token}`,
        "Content-Type": "application/merge-patch+json",
        "Content-Length": Buffer.byteLength(body),
      },
    },
    (response) => {
      response.resume();
      response.on("end", () => {
        probe.responseAt = performance.now();
        writeTimes.push(probe.responseAt - probe.sentAt);
        if (response.statusCode !== 200) {
          counts.write_errors += 1;
          process.stderr.write(`streams.mjs: probe write answered ${response.statusCode}\n`);
          user.pending = null;
          settled();
          return;
        }
        if (probe.arrivals.every((time) => time !== null)) finish(probe);
        else probe.timer = setTimeout(() => finish(probe), timeoutMs);
      });
    },
  );
  request.on("error", (error) => {
    counts.write_errors += 1;
    process.stderr.write(`streams.mjs: probe write failed: ${error.message}\n`);
    user.pending = null;
    settled();
  });
  request.end(body);
}

let probeTimer = null;
let probeStartedAt = null;
let probeStoppedAt = null;

function scheduleProbe() {
  if (stopping) return;
  const delay = minInterval + Math.random() * (maxInterval - minInterval);
  probeTimer = setTimeout(() => {
    probeOnce();
    scheduleProbe();
  }, delay);
}

// --- start, stop, report ---------------------------------------------------------

let settledResolve = null;
function settled() {
  if (stopping && settledResolve && users.every((user) => user.pending === null)) settledResolve();
}

function stop() {
  if (stopping) return;
  stopping = true;
  probeStoppedAt = performance.now();
  clearTimeout(probeTimer);
  settled();
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return round(sorted[rank - 1]);
}

function round(value) {
  return Math.round(value * 1000) / 1000;
}

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50_ms: percentile(sorted, 50),
    p95_ms: percentile(sorted, 95),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? round(sorted[sorted.length - 1]) : null,
    min_ms: sorted.length ? round(sorted[0]) : null,
  };
}

async function openAll() {
  const slots = [];
  for (const user of users) for (let slot = 0; slot < streamsPerUser; slot += 1) slots.push([user, slot]);
  const started = performance.now();
  let next = 0;
  let retried = 0;
  // A few at a time: each open reads the feed's head before its headers,
  // and a thousand at once would queue on the server's database pool.
  async function worker() {
    while (next < slots.length) {
      const [user, slot] = slots[next++];
      for (;;) {
        try {
          await openStream(user, slot);
          break;
        } catch (error) {
          if (error.status !== 429 || performance.now() - started > openRetryMs) throw error;
          retried += 1;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(openConcurrency, slots.length) }, worker));
  // Slots were pushed in the order opened; arrivals index by slot number.
  for (const user of users) user.streams.sort((a, b) => a.slot - b.slot);
  if (retried > 0) process.stderr.write(`streams.mjs: ${retried} opens refused with 429 and tried again\n`);
  return performance.now() - started;
}

async function main() {
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  let go;
  const goSignal = new Promise((resolve) => (go = resolve));
  process.on("SIGUSR2", () => go());

  const cpuBefore = process.cpuUsage();
  let openMs;
  try {
    openMs = await openAll();
  } catch (error) {
    fail(`opening the streams: ${error.message}`);
  }
  const open = users.reduce((sum, user) => sum + user.streams.length, 0);
  process.stderr.write(`streams.mjs: ${open} streams open for ${users.length} users in ${Math.round(openMs)} ms\n`);
  if (options["ready-file"]) fs.writeFileSync(options["ready-file"], `${open}\n`);

  if (options["wait-for-go"] && !stopping) await Promise.race([goSignal, new Promise((r) => process.once("SIGTERM", r))]);
  const cpuAtStart = process.cpuUsage();
  if (!stopping) {
    probeStartedAt = performance.now();
    scheduleProbe();
    if (duration > 0) setTimeout(stop, duration * 1000);
  }
  await new Promise((resolve) => {
    settledResolve = resolve;
    settled();
  });

  const cpu = process.cpuUsage(cpuAtStart);
  closing = true;
  for (const user of users) for (const stream of user.streams) stream.request.destroy();

  if (options["samples-file"]) {
    fs.appendFileSync(options["samples-file"], latencies.map((value) => `${round(value)}\n`).join(""));
  }
  const seconds = probeStartedAt === null ? 0 : (probeStoppedAt - probeStartedAt) / 1000;
  const result = {
    label: options.label,
    scenario: "streams",
    users: users.length,
    probed_users: probed.length,
    streams: open,
    open_ms: Math.round(openMs),
    seconds: round(seconds),
    ...counts,
    latency: summary(latencies),
    write: summary(writeTimes),
    // The load generator's own CPU while probing, user + system: it
    // shares the cores it measures.
    client_cpu_s: round((cpu.user + cpu.system) / 1e6),
    open_cpu_s: round((cpuAtStart.user + cpuAtStart.system - cpuBefore.user - cpuBefore.system) / 1e6),
    write_url: writeBase.origin,
    stream_url: streamUrl.origin,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  const failures = [];
  if (counts.missed > 0) failures.push(`${counts.missed} of ${counts.pairs} events missed`);
  if (counts.streams_lost > 0) failures.push(`${counts.streams_lost} streams ended early`);
  if (counts.write_errors > 0) failures.push(`${counts.write_errors} probe writes failed`);
  if (probeStartedAt !== null && counts.probes === 0) failures.push("no probe completed");
  if (failures.length > 0) fail(`FAILED: ${failures.join("; ")}`);
  // Sockets of the write agent would keep the process alive.
  writeAgent.destroy();
  streamAgent.destroy();
}

main().catch((error) => fail(error.stack ?? String(error)));
