# Shared by bench/run.sh and bench/compare.sh: settings, the tools,
# starting and stopping servers, and one wrk run as a JSON line.
# Sourced, not run; the caller sets WORK (a scratch directory) first.

WINDOW="${WINDOW:-4}"             # seconds per measurement in paired rounds
CONNECTIONS="${CONNECTIONS:-100}"
MANY_CONNECTIONS="${MANY_CONNECTIONS:-1000}"
THREADS="${THREADS:-2}"
PORT="${BENCH_PORT:-18181}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/todo-api-target}"
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
# Plain TCP for pgbench and psql as for the server (whose URL says so):
# libpq's default would take the TLS this machine's PostgreSQL offers.
export PGSSLMODE=disable
SECRET="bench-secret-bench-secret-bench-secret-0123"
ISSUER="todo-api"
SMALL_DB="todo_bench_small"
LARGE_DB="todo_bench_large"
SERVER_PID=""                     # the server run_wrk measures
SERVER_PORT=""
SERVER_PIDS=()                    # every server started and not yet stopped
# The planner setting the service gives its own PostgreSQL sessions
# (crates/persistence/src/connection.rs): pgbench and EXPLAIN use it too,
# so the ceiling and the plans are those of the service's statements.
export PGOPTIONS="-c random_page_cost=1.0"

log() { printf '\n== %s\n' "$*" >&2; }

cleanup() {
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
command -v pgbench >/dev/null || { echo "pgbench (PostgreSQL) is required" >&2; exit 1; }
pg_isready -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
ulimit -n "$(ulimit -Hn)"   # 1,000 connections need more than the usual 1,024 descriptors

# --- helpers -------------------------------------------------------------------
fresh_database() {
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

# start_server DATABASE [PORT]: starts a server, waits until it answers,
# and makes it the one run_wrk measures. SERVER_WRAPPER, if set, is the
# command the binary runs under (bench/instructions.sh: callgrind), and
# SERVER_START_TRIES how many tenths of a second it may take to answer.
start_server() {
  local database="$1" port="${2:-$PORT}"
  # The sign-up/sign-in rate limit stays on (its middleware runs on every
  # auth request) but with a budget the benchmark cannot spend: it signs
  # 100 users up and signs in thousands of times from one address.
  # The hasher's wait bound likewise: the sign-in burst beside `get` had a
  # p99 of 1.6 s against the default 2 s wait, and is measured for latency,
  # not for 503s (api/hashing.rs tests those).
  # Without PGOPTIONS: the server sets its planner option itself.
  # In a session of its own (setsid): with the kernel's autogroups, every
  # process of one session shares one CPU share, so a server started from
  # the benchmark's shell would share a share with wrk, while each
  # PostgreSQL backend (a session of its own) has one. A deployed service
  # does not share its session with its clients.
  setsid env -u PGOPTIONS DATABASE_URL="postgres://postgres@127.0.0.1:5432/$database?sslmode=disable" \
    JWT_SECRET="$SECRET" JWT_ISSUER="$ISSUER" PORT="$port" RUST_LOG=warn \
    AUTH_RATE_LIMIT_PER_MINUTE=1000000 AUTH_RATE_LIMIT_BURST=1000000 \
    PASSWORD_HASH_WAIT_SECONDS=30 ${SERVER_ENV:-} \
    ${SERVER_WRAPPER:-} "$BINARY" >"$WORK/server-$port.log" 2>&1 &
  SERVER_PID=$! SERVER_PORT="$port"
  SERVER_PIDS+=("$SERVER_PID")
  for _ in $(seq 1 "${SERVER_START_TRIES:-100}"); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$WORK/server-$port.log" >&2; exit 1
}

# use_server PID PORT: makes an already running server the one run_wrk measures.
use_server() { SERVER_PID="$1" SERVER_PORT="$2"; }

# stop_servers: stops every running server (pgbench needs their connections).
stop_servers() {
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
  SERVER_PIDS=() SERVER_PID="" SERVER_PORT=""
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }
# Sets the server's peak RSS (VmHWM) back to its current RSS, so that the
# peak read after a scenario is that scenario's own (Linux 4.0 and later).
reset_peak_rss() { echo 5 >"/proc/$SERVER_PID/clear_refs"; }

# run_wrk LABEL SCENARIO CONNECTIONS SECONDS USERS_FILE -> appends one JSON line
run_wrk() {
  local label="$1" scenario="$2" connections="$3" seconds="$4" users="$5"
  local line
  reset_peak_rss
  line=$(SCENARIO="$scenario" USERS_FILE="$users" wrk -t "$THREADS" -c "$connections" \
    -d "${seconds}s" --timeout 10s -s bench/scenario.lua "http://127.0.0.1:$SERVER_PORT" \
    | sed -n 's/^WRK_JSON //p')
  line="${line%\}},\"label\":\"$label\",\"connections\":$connections,\"rss_kib\":$(rss_kib),\"peak_rss_kib\":$(peak_rss_kib)}"
  echo "$line" | tee -a "$WORK/results.jsonl" >&2
}

# soak LABEL SECONDS: mixed at CONNECTIONS, with the server's RSS sampled
# every 10 s (one reading after a run is at the mercy of when the allocator
# last gave pages back), appended as a second JSON line.
soak() {
  local label="$1" seconds="$2" sampler
  (while sleep 10; do rss_kib; done) >"$WORK/$label.rss" &
  sampler=$!
  run_wrk "$label" mixed "$CONNECTIONS" "$seconds" "$WORK/users.txt"
  kill "$sampler"
  echo "{\"label\":\"${label}_rss\",\"rss_samples_kib\":[$(paste -sd, "$WORK/$label.rss")]}" \
    | tee -a "$WORK/results.jsonl" >&2
}
