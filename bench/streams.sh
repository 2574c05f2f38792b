#!/usr/bin/env bash
# Issue 14's live-stream figures: 1,000 open event streams on one
# instance while `mixed` runs against it. See docs/performance.md, "Issue
# 14: live streams", for the method.
#
#   bench/streams.sh                    the full run (about 9.5 minutes after the build)
#   SAME_INSTANCE=1 bench/streams.sh    writes and streams on one instance
#   BINARY=/tmp/todo-api bench/streams.sh  a given build instead of this checkout's
#   MIXED_ON=own-users bench/streams.sh   `mixed` on users without streams
#   ROUNDS=1 WINDOW=5 STREAM_USERS=20 MIXED_USERS=10 bench/streams.sh   a quick check
#
# Two instances share one fresh database: A (BENCH_PORT) takes the probe's
# writes, B (BENCH_PORT + 1) holds the streams and serves `mixed`. So each
# probe's event has to cross from A to B. With SAME_INSTANCE=1 only B runs
# and takes the writes too. 200 users because the contract allows 5
# streams per user on one instance; `mixed` writes for 100 of them, the
# probe for the other 100.
#
# Prints, and writes to bench/results/<run>-streams.txt: every wrk and probe
# line, then the summary (delivery latency over all rounds, events missed,
# RSS per stream, `mixed` with the streams open over without them). Exits
# non-zero if any probe's event failed to reach any stream.
set -euo pipefail
cd "$(dirname "$0")/.."

STREAM_USERS="${STREAM_USERS:-200}"       # users with streams open
STREAMS_PER_USER="${STREAMS_PER_USER:-5}" # the contract's most per user and instance
TASKS="${TASKS:-20}"                      # tasks per user that `mixed` works on
ROUNDS="${ROUNDS:-5}"                     # rounds of without, with, with, without
export WINDOW="${WINDOW:-20}"             # seconds per `mixed` window
SAME_INSTANCE="${SAME_INSTANCE:-0}"
MIXED_USERS="${MIXED_USERS:-100}"        # users whose tasks `mixed` works on
# Who they are: `stream-users`, the first MIXED_USERS of the stream users
# (each write of `mixed` wakes that user's streams on B, which read the
# feed and send the event: the full cost of delivery), the probe writing
# for the others; or `own-users`, MIXED_USERS more users with no stream
# open (what merely holding the streams open costs), the probe writing for
# every stream user. The probe never writes for a user `mixed` writes for:
# a write of `mixed` on B would wake that user's streams, which would find
# the probe's change in the feed without it having crossed from A.
MIXED_ON="${MIXED_ON:-stream-users}"
case "$MIXED_ON" in stream-users | own-users) ;; *) echo "MIXED_ON: stream-users or own-users" >&2; exit 1 ;; esac
# Ports apart from bench/run.sh's default, so both can run on one machine.
export BENCH_PORT="${BENCH_PORT:-18191}"
WORK="$(mktemp -d)"
source bench/lib.sh
DATABASE="todo_bench_streams"
WRITE_PORT="$PORT"
STREAM_PORT="$((PORT + 1))"
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates migration Cargo.toml || echo '+dirty')"
RESULTS="bench/results/$RUN_ID-streams.txt"
STREAMS_PID=""

command -v node >/dev/null || { echo "node (20 or later) is required" >&2; exit 1; }

# The probe must not outlive the run: its streams would hold B open.
stop_probe() {
  if [ -n "$STREAMS_PID" ]; then kill -TERM "$STREAMS_PID" 2>/dev/null || true; fi
}
trap 'stop_probe; cleanup' EXIT

# BINARY=/path measures another build (say, of an earlier commit) as it is.
if [ -z "${BINARY:-}" ]; then
  log "building the release binary"
  cargo build --release -p todo-api
  BINARY="$CARGO_TARGET_DIR/release/todo-api"
else
  COMMIT="the given build $BINARY"
fi

# --- data: STREAM_USERS users, each with TASKS tasks for `mixed` and one for the probe
if [ "$MIXED_ON" = stream-users ]; then
  [ "$STREAM_USERS" -gt "$MIXED_USERS" ] || { echo "STREAM_USERS must exceed MIXED_USERS: the probe needs users of its own" >&2; exit 1; }
  PREPARED_USERS="$STREAM_USERS" FIRST_MIXED_USER=1 FIRST_PROBED_USER=$((MIXED_USERS + 1))
else
  PREPARED_USERS=$((STREAM_USERS + MIXED_USERS)) FIRST_MIXED_USER=$((STREAM_USERS + 1)) FIRST_PROBED_USER=1
fi
log "preparing $PREPARED_USERS users x $((TASKS + 1)) tasks through the API"
fresh_database "$DATABASE"
start_server "$DATABASE" "$STREAM_PORT"
STREAM_PID="$SERVER_PID"
python3 bench/prepare.py "http://127.0.0.1:$STREAM_PORT" "$PREPARED_USERS" "$((TASKS + 1))" "$WORK/all-users.txt"
# Every user's last task is kept out of `mixed`'s file: for a probed user
# it is the probe's, which only the probe may write. The probe file lists
# every stream user, with that task for those the probe writes for and
# the token alone for the others (streams held, never probed).
# (awk alone: a `head` closing its pipe early fails the run under pipefail.)
awk -v last="$STREAM_USERS" -v first="$FIRST_PROBED_USER" \
  'NR > last {exit} NR >= first {print $1, $NF; next} {print $1}' \
  "$WORK/all-users.txt" >"$WORK/probe-users.txt"
awk -v first="$FIRST_MIXED_USER" -v count="$MIXED_USERS" \
  'NR >= first + count {exit} NR >= first {$NF = ""; sub(/ $/, ""); print}' \
  "$WORK/all-users.txt" >"$WORK/users.txt"
if [ "$SAME_INSTANCE" = 1 ]; then
  WRITE_PORT="$STREAM_PORT"
else
  start_server "$DATABASE" "$WRITE_PORT"
fi
use_server "$STREAM_PID" "$STREAM_PORT"

log "warming up B"
run_wrk warmup mixed "$CONNECTIONS" 5 "$WORK/users.txt"

# open_streams NAME SAMPLES: starts the probe with every stream open and
# waiting, and records B's RSS just before and just after the streams
# opened; the probe's latencies go to SAMPLES.
open_streams() {
  local name="$1" samples="$2" before after open
  sleep 2   # lets the last window's connections close
  before=$(rss_kib)
  rm -f "$WORK/ready"
  node bench/streams.mjs --stream-url "http://127.0.0.1:$STREAM_PORT" \
    --write-url "http://127.0.0.1:$WRITE_PORT" --users "$WORK/probe-users.txt" \
    --streams-per-user "$STREAMS_PER_USER" --wait-for-go --ready-file "$WORK/ready" \
    --open-retry-seconds 20 \
    --samples-file "$samples" --label "probe_$name" \
    >>"$WORK/probe.jsonl" &
  STREAMS_PID=$!
  until [ -s "$WORK/ready" ]; do
    if ! kill -0 "$STREAMS_PID" 2>/dev/null; then
      wait "$STREAMS_PID" || true
      STREAMS_PID=""
      echo "streams.mjs ended before its streams were open" >&2; exit 1
    fi
    sleep 0.2
  done
  open=$(cat "$WORK/ready")
  sleep 2   # the last stream's first bytes can come before its state settles
  after=$(rss_kib)
  echo "{\"label\":\"rss_$name\",\"streams\":$open,\"rss_before_kib\":$before,\"rss_open_kib\":$after,\"kib_per_stream\":$(awk -v a="$after" -v b="$before" -v n="$open" 'BEGIN {printf "%.2f", (a - b) / n}')}" \
    | tee -a "$WORK/results.jsonl" >&2
}

# close_streams: stops the probe, which waits for its probes in flight,
# closes its streams and reports; a missed event fails the run here.
close_streams() {
  local status=0
  kill -TERM "$STREAMS_PID"
  wait "$STREAMS_PID" || status=$?
  STREAMS_PID=""
  tail -n 1 "$WORK/probe.jsonl" | tee -a "$WORK/results.jsonl" >&2
  [ "$status" = 0 ] || { echo "FAILED: the probe exited $status (see its line above)" >&2; exit 1; }
}

# The probe alone first, with no `mixed`: what delivery takes when nothing
# queues ahead of it. Its opening of the streams is also the one RSS per
# stream is read from: later ones reopen into memory the allocator kept.
log "the probe alone: $((STREAM_USERS * STREAMS_PER_USER)) streams, $WINDOW s, no mixed"
open_streams idle "$WORK/idle-latencies.txt"
kill -USR2 "$STREAMS_PID"
sleep "$WINDOW"
close_streams

# A round: `mixed` without streams, with the streams open and the probe
# writing (twice), and without again. The order reads the same both ways,
# so a drift of the machine's speed that is steady over the round moves
# both sides of its ratio alike (as in bench/compare.sh).
log "$ROUNDS rounds of without, with, with, without; $WINDOW s windows; $((STREAM_USERS * STREAMS_PER_USER)) streams; probe writes on :$WRITE_PORT, streams and mixed on :$STREAM_PORT"
for round in $(seq 1 "$ROUNDS"); do
  run_wrk "without_r${round}a" mixed "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
  open_streams "r$round" "$WORK/latencies.txt"
  kill -USR2 "$STREAMS_PID"
  run_wrk "with_r${round}a" mixed "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
  run_wrk "with_r${round}b" mixed "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
  close_streams
  sleep 2   # as before the first window: B's stream connections close
  run_wrk "without_r${round}b" mixed "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
done
stop_servers

# --- summary -------------------------------------------------------------------------
{
  echo "run $RUN_ID, commit $COMMIT, $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))"
  echo "STREAM_USERS=$STREAM_USERS STREAMS_PER_USER=$STREAMS_PER_USER MIXED_USERS=$MIXED_USERS MIXED_ON=$MIXED_ON TASKS=$TASKS ROUNDS=$ROUNDS WINDOW=$WINDOW CONNECTIONS=$CONNECTIONS SAME_INSTANCE=$SAME_INSTANCE"
  cat "$WORK/results.jsonl"
  python3 - "$WORK/results.jsonl" "$WORK/latencies.txt" "$WORK/idle-latencies.txt" "$ROUNDS" <<'PY'
import json, math, statistics, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
rounds = int(sys.argv[4])

def delivery(what, samples_file, probes):
    samples = sorted(float(line) for line in open(samples_file) if line.strip())
    pct = lambda p: samples[max(1, math.ceil(p / 100 * len(samples))) - 1]
    pairs = sum(p["pairs"] for p in probes)
    print(f"delivery {what}: {sum(p['probes'] for p in probes)} writes, {len(samples)} of {pairs} "
          f"(write, stream) pairs delivered, {sum(p['missed'] for p in probes)} missed: "
          f"p50 {pct(50):.1f} ms, p95 {pct(95):.1f} ms, p99 {pct(99):.1f} ms, max {samples[-1]:.1f} ms")
    print(f"  probe writes p50 {statistics.median(p['write']['p50_ms'] for p in probes):.1f} ms; "
          f"load generator CPU while probing {', '.join(str(p['client_cpu_s']) for p in probes)} s")

probes = [rows[f"probe_r{n}"] for n in range(1, rounds + 1)]
missed = sum(p["missed"] for p in probes) + rows["probe_idle"]["missed"]
print(f"\nsummary (delivery: from the write's answer to its event, on each of the user's streams)")
delivery("with mixed running", sys.argv[2], probes)
print(f"  per round p99: {', '.join(str(p['latency']['p99_ms']) for p in probes)} ms")
delivery("with the probe alone", sys.argv[3], [rows["probe_idle"]])
first = rows["rss_idle"]
print(f"RSS of B per open stream: {first['kib_per_stream']} KiB "
      f"({first['rss_before_kib']} -> {first['rss_open_kib']} KiB for {first['streams']} streams, the first opening); "
      f"reopened in the rounds {', '.join(str(rows[f'rss_r{n}']['kib_per_stream']) for n in range(1, rounds + 1))} KiB")
ratios = []
for n in range(1, rounds + 1):
    without = sum(rows[f"without_r{n}{h}"]["rps"] for h in "ab")
    with_ = sum(rows[f"with_r{n}{h}"]["rps"] for h in "ab")
    ratios.append(with_ / without)
w = [rows[f"without_r{n}{h}"] for n in range(1, rounds + 1) for h in "ab"]
s = [rows[f"with_r{n}{h}"] for n in range(1, rounds + 1) for h in "ab"]
print(f"mixed with the streams open over without (a round: (with_a + with_b) / (without_a + without_b)): "
      f"rounds {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
print(f"  without req/s {min(r['rps'] for r in w):,.0f}-{max(r['rps'] for r in w):,.0f}, "
      f"with {min(r['rps'] for r in s):,.0f}-{max(r['rps'] for r in s):,.0f}; "
      f"non-2xx without {sum(r['non_2xx'] for r in w)}, with {sum(r['non_2xx'] for r in s)}")
print(f"  B's RSS after a window, median: without {statistics.median(r['rss_kib'] for r in w):,.0f} KiB, "
      f"with {statistics.median(r['rss_kib'] for r in s):,.0f} KiB")
if missed:
    sys.exit(f"FAILED: {missed} events missed")
PY
} | tee "$RESULTS"
echo "written to $RESULTS" >&2
