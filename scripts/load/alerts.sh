#!/usr/bin/env bash
# Load test of `GET /api/alerts?limit=50` with N alerts in the store, on PostgreSQL and on
# SQLite: seeds the alerts (in-engine bulk insert; the store's triggers keep its counters),
# serves them with the real API server (release build, authentication on, rate limit off),
# and runs wrk against it. Prints wrk's report (requests/s, latency percentiles) per engine.
#
#   scripts/load/alerts.sh [N=1000000] [DURATION=20s] [CONNECTIONS=32] [THREADS=2]
#
# ENGINES="postgres sqlite" (default) picks the engines; REUSE=1 skips seeding a store that
# already holds N alerts from an earlier run. BIN=path serves with another build of the
# example (say, of an earlier commit, for an A/B run); SCHEMA (PostgreSQL) and WORK (the
# SQLite file, wrk's reports) keep its stores apart. PAGES=n asks for a random page among
# the first n instead of the first page every time (scripts/load/random_page.lua).
#
# Needs: PostgreSQL on 127.0.0.1:5432 (database `test`), python3, wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-1000000}
DURATION=${2:-20s}
CONNS=${3:-32}
THREADS=${4:-2}
PORT=${PORT:-18080}
PG_BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=${SCHEMA:-fedics_load}
WORK=${WORK:-target/load}
mkdir -p "$WORK"
export FEDICS_JWT_SECRET=${FEDICS_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
# The server alone: no pipeline, so the release build skips the ML stack.
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --release -p fedics-server --example api_server
  BIN=target/release/examples/api_server
fi

SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -INT "$SERVER_PID" 2>/dev/null; true' EXIT

run_wrk() { # $1 = engine name, $2 = store URL
  "$BIN" --db "$2" --bind "127.0.0.1:$PORT" --token-out "$WORK/token" &
  local pid=$!
  SERVER_PID=$pid
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.2
  done
  local token
  token=$(cat "$WORK/token")
  local url="http://127.0.0.1:$PORT/api/alerts?limit=50"
  curl -fs -H "Authorization: Bearer $token" "$url" | python3 -c \
    'import json,sys; d=json.load(sys.stdin); print("total", d["total"], "page size", len(d["alerts"]))'
  echo "== $1: wrk -t$THREADS -c$CONNS -d$DURATION $url"
  local script=()
  if [ -n "${PAGES:-}" ]; then
    script=(-s scripts/load/random_page.lua)
    echo "   (random page among the first $PAGES)"
  fi
  PAGES=${PAGES:-} wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${script[@]}" \
    -H "Authorization: Bearer $token" "$url" | tee "$WORK/wrk-$1.txt"
  kill -INT $pid
  wait $pid 2>/dev/null || true
  SERVER_PID=
}

PG_URL="$PG_BASE?options[search_path]=$SCHEMA"
DB="$WORK/load.db"

seed_postgres() {
echo "== PostgreSQL: seeding $N alerts into schema $SCHEMA"
psql -q -h 127.0.0.1 -U postgres -d test -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
"$BIN" --db "$PG_URL" --migrate-only
# In chunks of 20k rows, one transaction each: the counter triggers update a few dozen
# counter rows, and one huge transaction would pile up row versions on them.
CHUNK=20000
seed_sql() {
  echo "SET search_path = $SCHEMA;"
  for ((lo = 1; lo <= N; lo += CHUNK)); do
    hi=$((lo + CHUNK - 1)); [ $hi -gt "$N" ] && hi=$N
    cat <<SQL
INSERT INTO alerts (id, timestamp, facility_id, severity, severity_rank, title, description,
    status, attack_type, attack_name, correlation_confidence, correlation_summary,
    context_analysis, first_seen, last_seen, tactic_ids, src_ip, dst_ip, flow_count,
    model_versions, headline_rev, latest_rev)
SELECT md5('load' || g)::uuid::text, ts, 'plant-' || (g % 5),
    (ARRAY['low', 'medium', 'high', 'critical'])[1 + g % 4], g % 4,
    'Remote System Discovery at plant-' || (g % 5), 'load test alert ' || g,
    (ARRAY['new', 'acknowledged', 'resolved', 'false-positive'])[1 + (g / 7) % 4],
    'T0846', 'Remote System Discovery', 0.8, 'seeded',
    '{"src_ip":"10.0.0.5","dst_ip":"10.0.1.10","tactic_ids":["TA0102"],"model_versions":{}}',
    ts, ts, '["TA0102"]', '10.0.0.5', '10.0.1.10', 1, '{"iforest":"if-1"}',
    (g % 4) || '|' || ts || '|' || g, ts || '|' || g
FROM (SELECT g, to_char(timestamp '2026-01-01' + g * interval '1 second',
                        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts
      FROM generate_series($lo, $hi) g) s;
SQL
  done
  # The bulk load updated the few dozen counter rows a million times within 50
  # transactions; their dead versions stay in the file after a plain VACUUM, and a seq scan
  # of 80 live rows would read thousands of pages. Compact it as a DBA would after an import
  # (steady-state pipeline writes touch counters only for new incidents and status changes).
  echo "VACUUM ANALYZE alerts; VACUUM FULL ANALYZE alert_counters;"
}
time seed_sql | psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1
}

seed_sqlite() {
echo "== SQLite: seeding $N alerts"
rm -f "$DB" "$DB-wal" "$DB-shm"
"$BIN" --db "sqlite://$DB" --migrate-only
time python3 - "$DB" "$N" <<'PY'
import hashlib, sqlite3, sys, uuid, datetime
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
t0 = datetime.datetime(2026, 1, 1)
sev = ["low", "medium", "high", "critical"]
st = ["new", "acknowledged", "resolved", "false-positive"]
def rows():
    for g in range(1, n + 1):
        ts = (t0 + datetime.timedelta(seconds=g)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        yield (str(uuid.UUID(hashlib.md5(f"load{g}".encode()).hexdigest())), ts,
               f"plant-{g % 5}", sev[g % 4], g % 4, f"Remote System Discovery at plant-{g % 5}",
               f"load test alert {g}", st[(g // 7) % 4], "T0846", "Remote System Discovery",
               0.8, "seeded",
               '{"src_ip":"10.0.0.5","dst_ip":"10.0.1.10","tactic_ids":["TA0102"],"model_versions":{}}',
               ts, ts, '["TA0102"]', "10.0.0.5", "10.0.1.10", 1, '{"iforest":"if-1"}',
               f"{g % 4}|{ts}|{g}", f"{ts}|{g}")
with c:
    c.executemany(
        "INSERT INTO alerts (id, timestamp, facility_id, severity, severity_rank, title, "
        "description, status, attack_type, attack_name, correlation_confidence, "
        "correlation_summary, context_analysis, first_seen, last_seen, tactic_ids, src_ip, "
        "dst_ip, flow_count, model_versions, headline_rev, latest_rev) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
c.execute("ANALYZE")
c.close()
PY
}

# REUSE=1 keeps a store seeded by an earlier run when it holds exactly N alerts.
pg_seeded() {
  [ "$(psql -Atq -h 127.0.0.1 -U postgres -d test \
      -c "SELECT count(*) FROM $SCHEMA.alerts" 2>/dev/null)" = "$N" ]
}
sqlite_seeded() {
  [ -f "$DB" ] && [ "$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM alerts").fetchone()[0])' "$DB" 2>/dev/null)" = "$N" ]
}

for engine in ${ENGINES:-postgres sqlite}; do
  case $engine in
    postgres)
      { [ "${REUSE:-0}" = 1 ] && pg_seeded; } || seed_postgres
      run_wrk postgres "$PG_URL" ;;
    sqlite)
      { [ "${REUSE:-0}" = 1 ] && sqlite_seeded; } || seed_sqlite
      run_wrk sqlite "sqlite://$DB" ;;
    *) echo "unknown engine $engine (postgres or sqlite)" >&2; exit 2 ;;
  esac
done
