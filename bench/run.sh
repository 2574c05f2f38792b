#!/usr/bin/env bash
# The todo-api load benchmark. See docs/performance.md for the method.
#
#   bench/run.sh            the standard run (about 8 minutes after the build)
#   SOAK=1 bench/run.sh     also the 1-minute and 5-minute memory runs
#
# Everything runs on this machine: load generator, server and PostgreSQL
# share its cores. Every connection is plain TCP on loopback
# (sslmode=disable) for the server and pgbench alike.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"        # seconds per scenario
ROUNDS="${ROUNDS:-3}"             # API-against-ceiling rounds for list and get
SCALE_ROUNDS="${SCALE_ROUNDS:-4}" # small-against-large rounds for list and get
PAGE_ROUNDS="${PAGE_ROUNDS:-5}"   # page-against-list rounds
WORK="$(mktemp -d)"
source bench/lib.sh
LARGE_PORT="$((PORT + 1))"        # the second server of the scale rounds
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates migration Cargo.toml || echo '+dirty')"
RESULTS="bench/results/$RUN_ID.json"
# The `page` scenario's list query, and which page is the far one.
PAGE_QUERY="/api/tasks?limit=20&sort=due_at&completed=false"
PAGE_NUMBER=50

log "building the release binary"
cargo build --release -p todo-api
BINARY="$CARGO_TARGET_DIR/release/todo-api"

# run_pgbench LABEL SCRIPT DATABASE SECONDS -> appends one JSON line
run_pgbench() {
  local label="$1" script="$2" database="$3" seconds="$4" output tps
  output=$(pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$seconds" \
    -f "$script" "$database" 2>&1)
  tps=$(echo "$output" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  local latency
  latency=$(echo "$output" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  echo "{\"label\":\"$label\",\"tps\":$tps,\"latency_avg_ms\":$latency,\"connections\":$CONNECTIONS}" \
    | tee -a "$WORK/results.jsonl" >&2
}

# The statements the server sends for `list` and `get` (as logged by
# PostgreSQL), with the user and task picked at random from bench_keys.
write_pgbench_scripts() {
  cat >"$WORK/list.sql" <<'SQL'
\set n random(0, 1999)
SELECT "tasks"."id", "tasks"."user_id", "tasks"."title", "tasks"."description", "tasks"."completed", "tasks"."completed_at", "tasks"."due_at", "tasks"."priority", "tasks"."labels", "tasks"."version", "tasks"."created_at", "tasks"."updated_at" FROM "tasks" WHERE "tasks"."user_id" = (SELECT user_id FROM bench_keys WHERE n = :n) ORDER BY "tasks"."created_at" DESC, "tasks"."id" DESC;
SQL
  cat >"$WORK/get.sql" <<'SQL'
\set n random(0, 1999)
SELECT "tasks"."id", "tasks"."user_id", "tasks"."title", "tasks"."description", "tasks"."completed", "tasks"."completed_at", "tasks"."due_at", "tasks"."priority", "tasks"."labels", "tasks"."version", "tasks"."created_at", "tasks"."updated_at" FROM "tasks" WHERE "tasks"."id" = (SELECT task_id FROM bench_keys WHERE n = :n) AND "tasks"."user_id" = (SELECT user_id FROM bench_keys WHERE n = :n) LIMIT 1;
SQL
}

# bench_keys: the (user, task) pairs the load generator uses, numbered, so
# pgbench can pick one at random like wrk does. Lives beside the schema
# only in the benchmark databases.
write_bench_keys() {
  local database="$1" users="$2"
  awk '{for (i = 2; i <= NF; i++) print $i}' "$users" >"$WORK/task_ids.txt"
  psql -q -d "$database" \
    -c "DROP TABLE IF EXISTS bench_keys" \
    -c "CREATE TABLE bench_keys (n int PRIMARY KEY, task_id uuid NOT NULL, user_id uuid NOT NULL)" \
    -c "CREATE TEMP TABLE ids (task_id uuid)" \
    -c "\\copy ids FROM '$WORK/task_ids.txt'" \
    -c "INSERT INTO bench_keys SELECT row_number() OVER () - 1, t.id, t.user_id FROM ids JOIN tasks t ON t.id = ids.task_id" \
    -c "ANALYZE bench_keys"
}

explain() {
  local database="$1" user_id task_id
  read -r user_id task_id < <(psql -At -F ' ' -d "$database" -c "SELECT user_id, task_id FROM bench_keys WHERE n = 0")
  {
    echo "-- list"
    psql -d "$database" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM tasks WHERE user_id = '$user_id' ORDER BY created_at DESC, id DESC"
    echo "-- get"
    psql -d "$database" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM tasks WHERE id = '$task_id' AND user_id = '$user_id'"
  } >"bench/results/$RUN_ID-explain-$database.txt"
}

# explain_page DATABASE: the plans of the statement a page of `page`
# costs, for the first page-N user, written as the service writes it (the
# range of the dated tasks, which fills both pages, and the total from the
# user's counters as a scalar subquery; see the repository's
# `page_leg_query` and `total_of`): page 1, and page 50 from the position
# where page 49 ends.
explain_page() {
  local database="$1" user_id due id
  user_id=$(psql -At -d "$database" -c "SELECT id FROM users WHERE email = 'page-0@bench.example'")
  IFS='|' read -r due id < <(psql -At -F '|' -d "$database" -c "SELECT due_at, id FROM tasks WHERE user_id = '$user_id' AND completed = false ORDER BY due_at NULLS LAST, id OFFSET $(( (PAGE_NUMBER - 1) * 20 - 1 )) LIMIT 1")
  local total="(SELECT CAST(task_count - done_count AS bigint) FROM users WHERE id = '$user_id') AS total"
  local dated="FROM tasks WHERE user_id = '$user_id' AND NOT completed AND due_at IS NOT NULL"
  {
    echo "-- page 1 of $PAGE_QUERY"
    psql -d "$database" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT *, $total $dated ORDER BY due_at, id LIMIT 21"
    echo "-- page $PAGE_NUMBER, after ($due, $id)"
    psql -d "$database" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT *, $total $dated AND (due_at, id) > ('$due', '$id') ORDER BY due_at, id LIMIT 21"
  } >"bench/results/$RUN_ID-explain-page.txt"
}

# One round of list and get against their ceiling, in this order:
#
#   API list, API get | pgbench list, get, get, list | API get, API list
#
# The server is stopped for the pgbench part: pgbench needs its 100
# connections, and PostgreSQL has 100 slots. This machine's speed drifts
# from one minute to the next, moving the API and the ceiling alike, and
# a run sometimes lands in a slow few seconds. The order is symmetric, so
# a drift that is steady over the round shifts both sides of each ratio
# equally; the median over the rounds leaves out a round that a short
# slow spell hit.
ceiling_round() {
  local round="$1" users="$WORK/users.txt"
  start_server "$SMALL_DB"
  run_wrk "warmup_r${round}a" get "$CONNECTIONS" 2 "$users"
  run_wrk "list_r${round}a" list "$CONNECTIONS" "$WINDOW" "$users"
  run_wrk "get_r${round}a" get "$CONNECTIONS" "$WINDOW" "$users"
  stop_servers
  run_pgbench "pgbench_list_r${round}a" "$WORK/list.sql" "$SMALL_DB" "$WINDOW"
  run_pgbench "pgbench_get_r${round}a" "$WORK/get.sql" "$SMALL_DB" "$WINDOW"
  run_pgbench "pgbench_get_r${round}b" "$WORK/get.sql" "$SMALL_DB" "$WINDOW"
  run_pgbench "pgbench_list_r${round}b" "$WORK/list.sql" "$SMALL_DB" "$WINDOW"
  start_server "$SMALL_DB"
  run_wrk "warmup_r${round}b" get "$CONNECTIONS" 2 "$users"
  run_wrk "get_r${round}b" get "$CONNECTIONS" "$WINDOW" "$users"
  run_wrk "list_r${round}b" list "$CONNECTIONS" "$WINDOW" "$users"
  stop_servers
}

# One round of the data-scale comparison. Two servers run side by side,
# one on each data set, so the sets can take turns every few seconds
# without a restart; only the one under load uses the CPU. For list, then
# for get: small, large, large, small.
scale_round() {
  local round="$1" scenario
  for scenario in list get; do
    use_server "$SMALL_PID" "$PORT"
    run_wrk "${scenario}_small_r${round}a" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
    use_server "$LARGE_PID" "$LARGE_PORT"
    run_wrk "${scenario}_large_r${round}a" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/large-users.txt"
    run_wrk "${scenario}_large_r${round}b" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/large-users.txt"
    use_server "$SMALL_PID" "$PORT"
    run_wrk "${scenario}_small_r${round}b" "$scenario" "$CONNECTIONS" "$WINDOW" "$WORK/users.txt"
  done
}

write_pgbench_scripts

# --- small data set: 100 users x 20 tasks, prepared through the API -------------
log "small data set: preparing 100 users x 20 tasks through the API"
fresh_database "$SMALL_DB"
start_server "$SMALL_DB"
python3 bench/prepare.py "http://127.0.0.1:$PORT" 100 20 "$WORK/users.txt"
write_bench_keys "$SMALL_DB" "$WORK/users.txt"
explain "$SMALL_DB"

stop_servers

# --- large data set: 10,000 users, about 1,000,000 tasks, seeded with SQL ------
# Seeded before any measurement, and then left as a long-lived table would
# be: vacuumed, analysed and checkpointed (`users` rewritten in full: the
# triggers updated each owner's row once per task seeded, and a plain
# vacuum leaves its index that large). Otherwise the autovacuum and the
# checkpoint that a million fresh rows set off run during the large rounds
# and take their CPU.
log "large data set: seeding 10,000 users and 1,001,900 tasks"
HASH=$(psql -At -d "$SMALL_DB" -c "SELECT password_hash FROM users LIMIT 1")
fresh_database "$LARGE_DB"
start_server "$LARGE_DB"    # applies the migrations
stop_servers
psql -q -d "$LARGE_DB" -v hash="$HASH" -f bench/seed_large.sql
psql -At -F ' ' -d "$LARGE_DB" -c "SELECT u.id, u.email, string_agg(t.id::text, ' ') FROM users u JOIN tasks t ON t.user_id = u.id WHERE u.email LIKE 'bench-%' GROUP BY u.id, u.email" \
  | python3 bench/mint_tokens.py "$SECRET" "$ISSUER" 86400 >"$WORK/large-users.txt"
write_bench_keys "$LARGE_DB" "$WORK/large-users.txt"
psql -q -d "$LARGE_DB" -c "VACUUM (FULL, ANALYZE) users" -c "VACUUM (ANALYZE) tasks" -c "CHECKPOINT"
explain "$LARGE_DB"

# Reads first, while every user still has exactly 20 tasks: the pgbench
# ceiling runs on the same rows.
log "list and get at $CONNECTIONS connections against the pgbench ceiling, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do ceiling_round "$round"; done

log "list and get on the small and the large set, $SCALE_ROUNDS rounds"
start_server "$SMALL_DB" "$PORT"; SMALL_PID="$SERVER_PID"
run_wrk warmup_small get "$CONNECTIONS" 3 "$WORK/users.txt"
start_server "$LARGE_DB" "$LARGE_PORT"; LARGE_PID="$SERVER_PID"
run_wrk warmup_large get "$CONNECTIONS" 3 "$WORK/large-users.txt"
for round in $(seq 1 "$SCALE_ROUNDS"); do scale_round "$round"; done
stop_servers

# One round of `page` against `list`, on the large set's server: a page of
# a filtered, sorted list of 2,000 tasks (the first, and the fiftieth
# through its cursor) against the whole list of a user with 20 tasks.
# Symmetric, as the other rounds: list, first, fiftieth, fiftieth, first,
# list.
page_round() {
  local round="$1"
  run_wrk "page_list_r${round}a" list "$CONNECTIONS" "$WINDOW" "$WORK/large-users.txt"
  run_wrk "page_first_r${round}a" page "$CONNECTIONS" "$WINDOW" "$WORK/page-first.txt"
  run_wrk "page_fiftieth_r${round}a" page "$CONNECTIONS" "$WINDOW" "$WORK/page-fiftieth.txt"
  run_wrk "page_fiftieth_r${round}b" page "$CONNECTIONS" "$WINDOW" "$WORK/page-fiftieth.txt"
  run_wrk "page_first_r${round}b" page "$CONNECTIONS" "$WINDOW" "$WORK/page-first.txt"
  run_wrk "page_list_r${round}b" list "$CONNECTIONS" "$WINDOW" "$WORK/large-users.txt"
}

log "page: pages 1 and $PAGE_NUMBER of $PAGE_QUERY against list, $PAGE_ROUNDS rounds"
psql -At -F ' ' -d "$LARGE_DB" -c "SELECT id, email FROM users WHERE email LIKE 'page-%'" \
  | python3 bench/mint_tokens.py "$SECRET" "$ISSUER" 86400 >"$WORK/page-users.txt"
start_server "$LARGE_DB"
python3 bench/page_cursors.py "http://127.0.0.1:$PORT" "$PAGE_QUERY" "$PAGE_NUMBER" \
  "$WORK/page-first.txt" "$WORK/page-fiftieth.txt" <"$WORK/page-users.txt"
explain_page "$LARGE_DB"
run_wrk warmup_page page "$CONNECTIONS" 3 "$WORK/page-first.txt"
for round in $(seq 1 "$PAGE_ROUNDS"); do page_round "$round"; done
stop_servers

# The scenarios' own runs: DURATION seconds each, one server, as every
# other scenario runs. The tail target is judged on these; a 4 s window of
# the rounds above is cut short enough that one 40 ms stall of the shared
# machine decides its p99.
log "reads at $CONNECTIONS and $MANY_CONNECTIONS connections"
start_server "$SMALL_DB"
run_wrk warmup get "$CONNECTIONS" 5 "$WORK/users.txt"
run_wrk list list "$CONNECTIONS" "$DURATION" "$WORK/users.txt"
run_wrk get get "$CONNECTIONS" "$DURATION" "$WORK/users.txt"
run_wrk "list_$MANY_CONNECTIONS" list "$MANY_CONNECTIONS" "$DURATION" "$WORK/users.txt"
run_wrk "get_$MANY_CONNECTIONS" get "$MANY_CONNECTIONS" "$DURATION" "$WORK/users.txt"

log "sign-in: alone, then a burst beside get"
run_wrk signin signin 8 "$DURATION" "$WORK/users.txt"
run_wrk get_baseline get "$CONNECTIONS" "$DURATION" "$WORK/users.txt"
SCENARIO=signin USERS_FILE="$WORK/users.txt" wrk -t 1 -c 8 -d "$((DURATION + 2))s" \
  -s bench/scenario.lua "http://127.0.0.1:$SERVER_PORT" >"$WORK/signin-burst.txt" &
burst=$!
sleep 1
run_wrk get_during_signin_burst get "$CONNECTIONS" "$DURATION" "$WORK/users.txt"
wait "$burst"
sed -n 's/^WRK_JSON //p' "$WORK/signin-burst.txt" | sed 's/}$/,"label":"signin_burst"}/' | tee -a "$WORK/results.jsonl" >&2
stop_servers

# Writes last, and `create` last of all: it adds about 140,000 tasks, and
# every later list would return hundreds of them per user.
log "writes at $CONNECTIONS connections, mixed also at $MANY_CONNECTIONS"
start_server "$SMALL_DB"
run_wrk warmup_writes get "$CONNECTIONS" 5 "$WORK/users.txt"
for scenario in flip update mixed; do
  run_wrk "$scenario" "$scenario" "$CONNECTIONS" "$DURATION" "$WORK/users.txt"
done
# The soak comes before the 1,000-connection run, whose connection buffers
# the allocator keeps: so its RSS figures are the 100-connection service's.
if [ "${SOAK:-0}" = 1 ]; then
  log "memory: mixed for 1 minute, then 5 minutes, same process"
  soak mixed_1min 60
  soak mixed_5min 300
fi
run_wrk "mixed_$MANY_CONNECTIONS" mixed "$MANY_CONNECTIONS" "$DURATION" "$WORK/users.txt"
run_wrk create create "$CONNECTIONS" "$DURATION" "$WORK/users.txt"
stop_servers

# --- results -----------------------------------------------------------------------
python3 bench/report.py "$WORK/results.jsonl" "$RESULTS" "$COMMIT" "$DURATION"
