#!/usr/bin/env bash
# Instructions the server executes per request, counted by callgrind:
# unlike requests per second on a shared 2-core machine, the count is the
# same from one run to the next, so a change to the request path can be
# judged by it before (and beside) a load run. See docs/performance.md,
# "Counting instructions".
#
#   bench/instructions.sh                 list, page 1, page 50 and get; then a
#                                         PATCH alone and with 5 event streams per
#                                         user (what delivering one change costs)
#   REQUESTS=200 bench/instructions.sh    fewer requests per scenario
#   TOP=25 bench/instructions.sh          also each scenario's costliest functions
#   BINARY=path/to/todo-api bench/instructions.sh   another build
#   KEEP=dir bench/instructions.sh        keeps each scenario's callgrind file
#
# Only the server is counted, in user space: PostgreSQL, the kernel's
# share of a request and the client are not.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${REQUESTS:-500}"       # measured requests per scenario
DELIVER_USERS=20                  # users the delivery scenarios patch for
STREAMS_PER_USER=5                # the contract's most per user and instance
WARMUP="${WARMUP:-50}"            # unmeasured requests before them
TOP="${TOP:-0}"
WORK="$(mktemp -d)"
source bench/lib.sh
DATABASE="todo_bench_instructions"
PAGE_QUERY="/api/tasks?limit=20&sort=due_at&completed=false"
PAGE_NUMBER=50

command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }

if [ -z "${BINARY:-}" ]; then
  log "building the release binary"
  cargo build --release -p todo-api
  BINARY="$CARGO_TARGET_DIR/release/todo-api"
fi

log "a fresh database: one user with 20 tasks, one with 2,000"
fresh_database "$DATABASE"
start_server "$DATABASE"   # applies the migrations
stop_servers
# The same shapes as bench/seed_large.sql's `bench-N` and `page-N` users.
psql -q -d "$DATABASE" <<SQL
INSERT INTO users (id, email, password_hash, created_at)
SELECT gen_random_uuid(), email, 'not a hash: these users never sign in', now() - interval '30 days'
FROM (VALUES ('list@bench.example'), ('page@bench.example')) AS v(email);
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, due_at,
                   created_at, updated_at)
SELECT gen_random_uuid(), u.id, 'seeded task ' || n, NULL, n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN stamp END,
       CASE WHEN n % 10 <> 0 THEN now() + (n * 61 % 90) * interval '1 day' END,
       stamp, stamp
FROM users AS u
CROSS JOIN LATERAL generate_series(1, CASE WHEN u.email LIKE 'list%' THEN 20 ELSE 2000 END) AS n
CROSS JOIN LATERAL (SELECT now() - (n || ' minutes')::interval AS stamp) AS t;
-- The delivery scenarios' users: one task each, patched round robin.
INSERT INTO users (id, email, password_hash, created_at)
SELECT gen_random_uuid(), 'deliver-' || n || '@bench.example', 'not a hash', now()
FROM generate_series(1, $DELIVER_USERS) AS n;
INSERT INTO tasks (id, user_id, title, created_at, updated_at)
SELECT gen_random_uuid(), id, 'delivered', now(), now() FROM users WHERE email LIKE 'deliver-%';
UPDATE users SET task_count = (SELECT count(*) FROM tasks WHERE tasks.user_id = users.id);
ANALYZE;
SQL
# tokens WHERE: "token task_id" lines for the users the condition picks.
tokens() {
  psql -At -F ' ' -d "$DATABASE" \
    -c "SELECT u.id, u.email, (SELECT t.id FROM tasks t WHERE t.user_id = u.id LIMIT 1) FROM users u WHERE $1 ORDER BY u.email" \
    | python3 bench/mint_tokens.py "$SECRET" "$ISSUER" 86400
}
tokens "u.email NOT LIKE 'deliver-%'" >"$WORK/tokens.txt"
tokens "u.email LIKE 'deliver-%'" >"$WORK/deliver-tokens.txt"
read -r LIST_TOKEN TASK_ID < <(sed -n 1p "$WORK/tokens.txt")
read -r PAGE_TOKEN _ < <(sed -n 2p "$WORK/tokens.txt")

log "starting the server under callgrind"
SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$WORK/callgrind.out" \
  SERVER_START_TRIES=600 start_server "$DATABASE"

# The far page's address, walked to through the Link chain.
echo "$PAGE_TOKEN" | python3 bench/page_cursors.py "http://127.0.0.1:$PORT" "$PAGE_QUERY" \
  "$PAGE_NUMBER" "$WORK/page-first.txt" "$WORK/page-far.txt"
PAGE_FAR=$(cut -d' ' -f2 "$WORK/page-far.txt")

# drive TOKEN PATH COUNT: COUNT requests on one kept-alive connection,
# each answered 200.
drive() {
  python3 - "$PORT" "$1" "$2" "$3" <<'PY'
import http.client, sys
port, token, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
connection = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(count):
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{path}: {response.status}")
PY
}

# measure NAME TOKEN PATH: warms the path up, counts REQUESTS of it.
measure() {
  local name="$1" token="$2" path="$3"
  drive "$token" "$path" "$WARMUP"
  # A dump zeroes the counters: the next one holds only what came after.
  callgrind_control -d "warmup" "$SERVER_PID" >/dev/null 2>&1
  drive "$token" "$path" "$REQUESTS"
  callgrind_control -d "$name" "$SERVER_PID" >/dev/null 2>&1
}

measure list "$LIST_TOKEN" /api/tasks
measure page_1 "$PAGE_TOKEN" "$PAGE_QUERY"
measure "page_$PAGE_NUMBER" "$PAGE_TOKEN" "$PAGE_FAR"
measure get "$LIST_TOKEN" "/api/tasks/$TASK_ID"
# A change's delivery: the same PATCHes without and with streams open; the
# difference is what the server does to deliver one change to a user's 5
# streams (the feed read and 5 events).
python3 bench/deliver.py "$PORT" "$WORK/deliver-tokens.txt" 0 "$REQUESTS" "$WARMUP" "$SERVER_PID" patch
python3 bench/deliver.py "$PORT" "$WORK/deliver-tokens.txt" "$STREAMS_PER_USER" "$REQUESTS" "$WARMUP" \
  "$SERVER_PID" "patch_${STREAMS_PER_USER}_streams"
stop_servers

log "instructions per request ($REQUESTS requests each, $BINARY)"
[ -z "${KEEP:-}" ] || mkdir -p "$KEEP"
for dump in $(ls -v "$WORK"/callgrind.out.*); do
  name=$(sed -n 's/^desc: Trigger: dump //p' "$dump")
  total=$(sed -n 's/^summary: //p' "$dump")
  [ -n "$name" ] && [ "$name" != warmup ] || continue
  printf '%-10s %8d\n' "$name" "$((total / REQUESTS))"
  [ -z "${KEEP:-}" ] || cp "$dump" "$KEEP/$name.callgrind"
  if [ "$TOP" -gt 0 ]; then
    # The function table, past the totals; the threads' entry frames, which
    # callgrind charges with everything below them, are left out.
    callgrind_annotate --inclusive=no --threshold=100 "$dump" 2>/dev/null \
      | sed -n '/file:function/,$p' | sed -n '3,$p' | grep -v '(100.0%)' | sed -n "1,${TOP}p"
  fi
done
