#!/usr/bin/env bash
# Two server configurations compared on `list` and `get` (or SCENARIOS),
# in paired rounds.
#
#   ENV_B="WORKERS=4" bench/compare.sh
#   BINARY_B=/tmp/other-build ROUNDS=8 bench/compare.sh
#   SCENARIOS=mixed BINARY_A=/tmp/before BINARY_B=/tmp/after bench/compare.sh
#
# A and B run side by side on one database of 100 users x 20 tasks (the
# small set of bench/run.sh); only the one under load uses the CPU. A round
# measures list, then get, WINDOW seconds at a time, in the order A B B A,
# so a drift of the machine's speed that is steady over the round cancels;
# the median over the rounds leaves out a round that a short stall hit.
# BINARY_A/B default to the release build of this checkout; ENV_A/B are
# extra environment assignments for each server.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-6}"
SCENARIOS="${SCENARIOS:-list get}"
WORK="$(mktemp -d)"
source bench/lib.sh
DATABASE="todo_bench_compare"

log "building the release binary"
cargo build --release -p todo-api
BINARY_A="${BINARY_A:-$CARGO_TARGET_DIR/release/todo-api}"
BINARY_B="${BINARY_B:-$BINARY_A}"

fresh_database "$DATABASE"
BINARY="$BINARY_A" SERVER_ENV="${ENV_A:-}" start_server "$DATABASE" "$PORT"
A_PID="$SERVER_PID"
python3 bench/prepare.py "http://127.0.0.1:$PORT" 100 20 "$WORK/users.txt"
BINARY="$BINARY_B" SERVER_ENV="${ENV_B:-}" start_server "$DATABASE" "$((PORT + 1))"
B_PID="$SERVER_PID"

log "warming up both servers"
use_server "$A_PID" "$PORT"
run_wrk warmup_a get "$CONNECTIONS" 3 "$WORK/users.txt"
use_server "$B_PID" "$((PORT + 1))"
run_wrk warmup_b get "$CONNECTIONS" 3 "$WORK/users.txt"

log "$ROUNDS rounds of A B B A, $WINDOW s per window"
for round in $(seq 1 "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    use_server "$A_PID" "$PORT"
    run_wrk "${scenario}_A_r${round}a" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
    use_server "$B_PID" "$((PORT + 1))"
    run_wrk "${scenario}_B_r${round}a" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
    run_wrk "${scenario}_B_r${round}b" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
    use_server "$A_PID" "$PORT"
    run_wrk "${scenario}_A_r${round}b" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
  done
done
stop_servers

python3 - "$WORK/results.jsonl" "$ROUNDS" $SCENARIOS <<'PY'
import json, statistics, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
rounds = int(sys.argv[2])
print("\nB over A, requests per second (a round: (B_a + B_b) / (A_a + A_b))")
for scenario in sys.argv[3:]:
    ratios, tails = [], {"A": [], "B": []}
    for n in range(1, rounds + 1):
        side = {s: [rows[f"{scenario}_{s}_r{n}{h}"] for h in "ab"] for s in "AB"}
        ratios.append(sum(r["rps"] for r in side["B"]) /
                      sum(r["rps"] for r in side["A"]))
        for s in "AB":
            tails[s] += [r["p99_ms"] / r["p50_ms"] for r in side[s]]
    a = [rows[f"{scenario}_A_r{n}{h}"]["rps"] for n in range(1, rounds + 1) for h in "ab"]
    b = [rows[f"{scenario}_B_r{n}{h}"]["rps"] for n in range(1, rounds + 1) for h in "ab"]
    print(f"{scenario}: rounds {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
    print(f"  A req/s {min(a):,.0f}-{max(a):,.0f}, B req/s {min(b):,.0f}-{max(b):,.0f}; "
          f"worst p99/p50 A {max(tails['A']):.2f}, B {max(tails['B']):.2f}")
PY
