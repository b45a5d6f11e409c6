#!/bin/sh
# `make bench`, after bench/run.sh: `returnflow serve` as a service, measured in one run.
#
#   1. acked webhooks/s and p50/p99 latency: wrk posts the signed return.created.json to a fresh serve
#      (a dry tenant; every 202 is written only after its journal commit returned from fsync);
#   2. beside it, the disk's own ceiling, measured now in the same folder (build/fsync_ceiling): one
#      write+fdatasync per record, and group commits of 64 records; the ratios are computed here;
#   3. mapping throughput with `workers = 1` and `workers = 2`, from a journal filled before start, and
#      the scaling ratio: one tenant (its batches mapped in chunks on both threads), then two tenants
#      (each read by its own thread);
#   4. end to end: journaled events mapped and delivered to the Klaviyo stand-in, limits lifted
#      (--no-limits, rate_scale 1000), beside what the stand-in answers alone (wrk, same connections);
#   5. peak RSS (VmHWM) of serve working on a large queue for RSS_SECONDS (BIG=1: 1,000,000 journaled
#      events), with VmRSS every 5 s and its growth per event mapped meanwhile;
#   6. (ack_pg) 1 again with the store on PostgreSQL: a private cluster initdb'd in the scratch folder
#      (fsync on, synchronous_commit on, a unix socket: Debian's postgresql-15), acked webhooks/s and
#      p99 beside phase 1's, and the CPU seconds serve and PostgreSQL spent per 1,000 webhooks acked;
#   7. (cluster) two nodes on one PostgreSQL: acked webhooks/s at both at once, mapping events/s with
#      one node and with two, CPU per 1,000 webhooks acked and mapped, and the time a dead node's
#      tenant takes to be mapped by the other.
# The goals of the issue are printed beside the figures; nothing here says whether one is met unless
# it printed the figure that shows it.
#
# Every server runs from a temporary folder under $BUILD (the repository's disk), removed at exit with
# every process started here. Servers are stopped with SIGKILL: their data is thrown away, and SIGTERM
# would first map every journaled event. PHASES picks some (default: "ack ack_pg map e2e rss cluster"; e.g.
# `BIG=1 PHASES=rss sh bench/serve.sh`); the sizes below are environment variables too.
# Run from the repository root after `make build build/fsync_ceiling` (build/bench_transform, when
# built, is run beside the mapping figures). Installs nothing; needs wrk, sqlite3, curl, lua5.4 and
# Debian's python3 with python3-jsonschema (for the stand-in).
set -u

BUILD=${BUILD:-build}
FIXTURE=${FIXTURE:-fixtures/loop/return.created.json}
BIG=${BIG:-0}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
WRK_SECONDS=${WRK_SECONDS:-10}
CEILING_SECONDS=${CEILING_SECONDS:-3}
MAP_N=${MAP_N:-10000}                 # journaled events per tenant, two tenants
E2E_N=${E2E_N:-3000}                  # events delivered end to end (return.created: 3 requests each)
STANDIN_SECONDS=${STANDIN_SECONDS:-5}
if [ "$BIG" = 1 ]; then RSS_N=${RSS_N:-1000000}; else RSS_N=${RSS_N:-100000}; fi
RSS_SECONDS=${RSS_SECONDS:-20}
TIMEOUT=${TIMEOUT:-180}               # the longest wait for one phase to finish its work, in seconds
PHASES=${PHASES:-ack ack_pg map e2e rss cluster}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

PYTHON=/usr/bin/python3               # Debian's: python3-jsonschema is there, for the stand-in
STANDIN=spec/standin/klaviyo_standin.py
BIN=$BUILD/returnflow
CEILING=$BUILD/fsync_ceiling
TRANSFORM=$BUILD/bench_transform      # optional: the transform alone, beside the mapping figures
SECRET=bench-secret
KEY=pk_bench_0123456789abcdef         # any pk_ key: the stand-in accepts every one unless told

for f in "$BIN" "$CEILING"; do
  [ -x "$f" ] || { echo "bench: $f missing: run 'make build $CEILING' first" >&2; exit 2; }
done
[ -r "$FIXTURE" ] || { echo "bench: fixture $FIXTURE not readable" >&2; exit 2; }
for tool in wrk sqlite3 curl "$PYTHON" lua5.4; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found (make deps; wrk: tools/deps.sh bench)" >&2; exit 2; }
done

. bench/lib.sh
bench_setup serve
# field NAME FILE: the value of NAME=VALUE in the wrk-summary line of FILE.
field() {
  awk -v k="$1" '$1 == "wrk-summary" { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$2"
}
# CPU seconds a process has used (user + system), from /proc.
# CPU seconds of a process and of its running children (serve's mapping workers are processes).
cpu_of() {
  kids=$(cat /proc/"$1"/task/*/children 2>/dev/null)
  # shellcheck disable=SC2086  # one path a pid
  for p in "$1" $kids; do cat "/proc/$p/stat" 2>/dev/null; done |
    awk -v t="$ticks" '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s / t }'
}
# kB of a /proc/PID/status line (VmRSS, VmHWM).
vm_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
sql() { sqlite3 -cmd '.timeout 5000' "$1/data/returnflow.db" "$2"; }
fail() { echo "bench: $*" >&2; exit 1; }

# The body of a config for serve in folder $1: tenants in Lua ($2), workers ($3).
write_config() {
  cat >"$1/returnflow.conf.lua" <<EOF
return {
  listen = "127.0.0.1:0", data = "$1/data", workers = $3,
  tenants = { $2 },
}
EOF
}
dry_tenant() { printf '%s = { scripts = "%s/scripts", webhook_secret = "%s" },' "$1" "$root" "$SECRET"; }
keyed_tenant() {
  printf '%s = { scripts = "%s/scripts", webhook_secret = "%s", klaviyo = { key = "%s", base_url = "%s", rate_scale = 1000 } },' \
         "$1" "$root" "$SECRET" "$KEY" "$2"
}

# start_serve DIR: runs serve there; sets serve_pid and serve_addr, or fails with its log.
start_serve() {
  "$BIN" serve -c "$1/returnflow.conf.lua" >/dev/null 2>"$1/serve.err" &
  serve_pid=$!
  pids="$pids $serve_pid"
  serve_addr=""
  i=0
  while [ $i -lt 200 ]; do
    serve_addr=$(sed -n 's/.*"msg":"listening","address":"\([^"]*\)".*/\1/p' "$1/serve.err" 2>/dev/null)
    [ -n "$serve_addr" ] && return 0
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
  done
  cat "$1/serve.err" >&2
  fail "serve did not start in $1"
}
stop() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# A data folder with serve's own schema: serve creates it, then is stopped.
make_store() {
  start_serve "$1"
  stop "$serve_pid"
}

# prefill DIR N TENANT_SQL: journals N events (state 0) as webhooks would, each the fixture with its
# own return id and customer email (so each is its own return of its own profile), and the scripts
# version serve froze at its start (every tenant here has the same scripts) as ingest records it.
# TENANT_SQL is an SQL expression of i (1..N) naming the tenant.
prefill() {
  version=$(ls "$1/data/scripts/$(ls "$1/data/scripts" | head -n 1)" | grep -v '\.' | head -n 1)
  sqlite3 "$1/data/returnflow.db" "PRAGMA synchronous=OFF; BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2),
      f(body) AS (SELECT CAST(readfile('$fixture_abs') AS TEXT))
    INSERT INTO events(tenant, received_at, script_version, body)
      SELECT $3, CAST(strftime('%s', 'now') AS INTEGER) * 1000, '$version',
             CAST(replace(replace(f.body, '\"$return_id\"', '\"' || ($return_id * 10 + i) || '\"'),
                          '$email_user@', '$email_user+' || i || '@') AS BLOB)
      FROM n, f;
    COMMIT; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null || fail "cannot fill the journal in $1"
}

# first_request MAP_OUTPUT BODY_FILE: writes the body of the first request `returnflow map` printed
# to BODY_FILE; prints its path, then its unique_id.
first_request() {
  "$PYTHON" -c 'import json, sys
doc = json.loads(open(sys.argv[1]).readline())
r = doc["requests"][0]
open(sys.argv[2], "w").write(json.dumps(r["body"], ensure_ascii=False))
print(r["path"])
print(r["body"]["data"]["attributes"]["unique_id"])' "$1" "$2"
}
# The stand-in's /_standin/stats on stdin: prints events accepted, deduplicated, requests answered.
standin_stats() {
  "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin)
print(d["events_accepted"], d["events_deduplicated"], d["requests"])'
}

# wait_zero DIR T0 SQL PID: polls SQL (a count) until it is 0; prints the seconds since T0, or fails.
wait_zero() {
  t0=$2
  while :; do
    left=$(sql "$1" "$3")
    [ "$left" = 0 ] && { calc 'a - b' "$(now)" "$t0"; return 0; }
    kill -0 "$4" 2>/dev/null || { cat "$1/serve.err" >&2; fail "serve exited in $1"; }
    [ "$(calc 'a - b > c' "$(now)" "$t0" "$TIMEOUT")" = 1 ] && fail "$1: still $left left after ${TIMEOUT}s ($3)"
    sleep 0.1
  done
}

fixture_abs=$(cd "$(dirname "$FIXTURE")" && pwd)/$(basename "$FIXTURE")
record=$(wc -c <"$FIXTURE" | tr -d ' ')
return_id=$(sed -n 's/^  "id": "\([0-9]*\)",$/\1/p' "$FIXTURE" | head -n 1)
email_user=$(sed -n 's/^    "email": "\([^@"]*\)@.*/\1/p' "$FIXTURE" | head -n 1)
if [ -z "$return_id" ] || [ -z "$email_user" ]; then
  fail "$FIXTURE: no top-level \"id\" or customer_detail email to number the events by"
fi
signature=$("$PYTHON" -c 'import base64, hashlib, hmac, sys
print(base64.b64encode(hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).digest()).decode())' \
            "$SECRET" "$FIXTURE") || fail "cannot sign $FIXTURE"

echo "serve benchmark: $FIXTURE ($record B), data in $tmp"
echo "  disk: $tmp on $(df -P "$tmp" | awk 'NR == 2 { print $1 }'), the repository on $(df -P . | awk 'NR == 2 { print $1 }'); $(nproc) cores"

# --------------------------------------------------------------------------------------------------
# 1 and 2: acked webhooks/s beside the disk's ceiling
phase_ack() {
  mkdir -p "$tmp/ceiling" "$tmp/ack"
  "$CEILING" "$tmp/ceiling" "$record" 1 "$CEILING_SECONDS" >"$tmp/ceiling/one" || fail "$CEILING failed"
  "$CEILING" "$tmp/ceiling" "$record" 64 "$CEILING_SECONDS" >"$tmp/ceiling/group" || fail "$CEILING failed"
  one_rate=$(sed -n 's/.* = \([0-9]*\) commits\/s.*/\1/p' "$tmp/ceiling/one")
  group_rate=$(sed -n 's/.*, \([0-9]*\) records\/s$/\1/p' "$tmp/ceiling/group")
  echo "disk ceiling, write+fdatasync per record:  $CEILING DIR $record 1 $CEILING_SECONDS"
  echo "  $(cat "$tmp/ceiling/one")"
  echo "disk ceiling, group commits of 64:          $CEILING DIR $record 64 $CEILING_SECONDS"
  echo "  $(cat "$tmp/ceiling/group")"

  write_config "$tmp/ack" "$(dry_tenant bench)" 0
  start_serve "$tmp/ack"
  url="http://$serve_addr/v1/webhooks/bench"
  first=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
               -H "X-Loop-Signature: $signature" --data-binary "@$FIXTURE" "$url")
  [ "$first" = 202 ] || fail "a signed $FIXTURE got $first, not 202, from $url: $(cat "$tmp/ack/serve.err")"
  echo "acked webhooks: BODY=$FIXTURE SIGNATURE=<HMAC-SHA256 of the body> wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_SECONDS}s -s bench/wrk_post.lua $url"
  echo "  (serve: one dry tenant, so one mapping thread, mapping while it acks; journal commits synchronous=FULL; wrk on the same $(nproc) cores)"
  cpu0=$(cpu_of "$serve_pid")
  BODY=$FIXTURE SIGNATURE=$signature wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" \
    -s bench/wrk_post.lua "$url" >"$tmp/ack/wrk" 2>&1
  cpu1=$(cpu_of "$serve_pid")
  accepted=$(curl -s "http://$serve_addr/metrics" | sed -n 's/^returnflow_webhooks_total{outcome="accepted"} \([0-9]*\)$/\1/p')
  journaled=$(sql "$tmp/ack" "SELECT count(*) FROM events")
  ack_mapped=$(sql "$tmp/ack" "SELECT count(*) FROM events WHERE tenant = 'bench' AND state > 0")
  stop "$serve_pid"
  grep -q '^wrk-summary' "$tmp/ack/wrk" || { cat "$tmp/ack/wrk" >&2; fail "wrk printed no summary"; }
  requests=$(field requests "$tmp/ack/wrk")
  seconds=$(field seconds "$tmp/ack/wrk")
  non2xx=$(field non2xx "$tmp/ack/wrk")
  socket_errors=$(calc 'a + b + c + d' "$(field connect "$tmp/ack/wrk")" "$(field read "$tmp/ack/wrk")" \
                       "$(field write "$tmp/ack/wrk")" "$(field timeout "$tmp/ack/wrk")")
  acked=$((requests - non2xx))
  ack_rate=$(calc 'int(a / b)' "$acked" "$seconds")
  printf '  %s answers in %s s: %s acked webhooks/s; p50 %s ms, p99 %s ms, max %s ms\n' "$requests" "$seconds" \
         "$ack_rate" "$(calc 'a / 1000' "$(field p50_us "$tmp/ack/wrk")")" \
         "$(calc 'a / 1000' "$(field p99_us "$tmp/ack/wrk")")" "$(calc 'a / 1000' "$(field max_us "$tmp/ack/wrk")")"
  if [ "$non2xx" = 0 ] && [ "$socket_errors" = 0 ]; then
    echo "  every answer wrk read was 2xx (non-2xx: 0, socket errors: 0)"
  else
    echo "  NOT all 2xx: $non2xx answers >= 400 and $socket_errors socket errors; acked/s counts the 2xx only"
  fi
  echo "  serve's /metrics: $accepted accepted (202): wrk's $acked, the signed check, and $((accepted - acked - 1))" \
       "answered after wrk stopped reading ($WRK_CONNECTIONS connections); $journaled events in the journal," \
       "$ack_mapped of them mapped meanwhile ($(calc 'int(a / b)' "$ack_mapped" "$seconds")/s);" \
       "serve used $(calc 'sprintf("%.2f", (a - b) / c)' "$cpu1" "$cpu0" "$seconds") cores"
  echo "  vs write+fdatasync per record: $(calc 'sprintf("%.2fx", a / b)' "$ack_rate" "$one_rate") ($ack_rate / $one_rate commits/s);" \
       "vs group commits of 64: $(calc 'sprintf("%.2fx", a / b)' "$ack_rate" "$group_rate") ($ack_rate / $group_rate records/s)"
  echo "  goal: >= 20000 acked webhooks/s with p99 <= 10 ms"
  rm -rf "$tmp/ack" "$tmp/ceiling"
}

# --------------------------------------------------------------------------------------------------
# 3: mapping throughput, 1 and 2 threads: one tenant, then two whose ids hash to different threads (worker.c)
thread_of() {
  lua5.4 - "$1" <<'EOF'
local h = 2166136261
for c in arg[1]:gmatch(".") do h = ((h ~ c:byte()) * 16777619) & 0xffffffff end
print(h % 2)
EOF
}
# map_scaling LABEL TENANTS TENANT_SQL IN_LIST: mapping of 2 * MAP_N events journaled before start over
# TENANTS (config text; TENANT_SQL names each event's tenant, prefill), with `workers = 1` and `= 2`;
# sets map_rate_1 and map_rate_2 and prints the scaling.
map_scaling() {
  mkdir -p "$tmp/map0"
  write_config "$tmp/map0" "$2" 1
  make_store "$tmp/map0"
  prefill "$tmp/map0" $((2 * MAP_N)) "$3"
  echo "mapping, $1: $((2 * MAP_N)) events journaled before start (dry), serve -c CONFIG" \
       "with \`workers = W\`; timed from start until no event of tenant $4 has state 0"
  for w in 1 2; do
    d=$tmp/map$w
    mkdir -p "$d/data"
    write_config "$d" "$2" "$w"
    cp "$tmp/map0/data/returnflow.db" "$d/data/returnflow.db"
    t0=$(now)
    start_serve "$d"
    s=$(wait_zero "$d" "$t0" "SELECT count(*) FROM events WHERE tenant IN ($4) AND state = 0" "$serve_pid") || exit 1
    cpu=$(cpu_of "$serve_pid")
    stop "$serve_pid"
    mapped=$(sql "$d" "SELECT count(*) FROM events WHERE state = 1")
    other=$(sql "$d" "SELECT count(*) FROM events WHERE state <> 1")
    rate=$(calc 'int(a / b)' "$((2 * MAP_N))" "$s")
    eval "map_rate_$w=\$rate"
    printf '  workers = %s: %s events in %.2f s = %s events/s (%s mapped, %s in another state); serve used %.2f cores\n' \
           "$w" "$((2 * MAP_N))" "$s" "$rate" "$mapped" "$other" "$(calc 'a / b' "$cpu" "$s")"
    rm -rf "$d"
  done
  # shellcheck disable=SC2154  # set by eval above
  echo "  $1, scaling 1 -> 2 workers: $(calc 'sprintf("%.2fx", b / a)' "$map_rate_1" "$map_rate_2") ($map_rate_2 / $map_rate_1 events/s); goal: >= 1.8x"
  rm -rf "$tmp/map0"
}
phase_map() {
  [ "$(thread_of a)" != "$(thread_of b)" ] || fail "tenants a and b hash to the same of 2 threads (core/service/worker.c hash)"
  map_scaling "one tenant (a)" "$(dry_tenant a)" "'a'" "'a'"
  one_tenant_rate=$map_rate_1               # the next run sets map_rate_1 again (two tenants)
  map_scaling "two tenants (a and b, $MAP_N each)" "$(dry_tenant a) $(dry_tenant b)" \
              "CASE i % 2 WHEN 1 THEN 'a' ELSE 'b' END" "'a', 'b'"
  if [ -x "$TRANSFORM" ] && "$TRANSFORM" "$((2 * MAP_N))" "$FIXTURE" scripts >"$tmp/transform" 2>/dev/null; then
    transform_rate=$(awk '$2 == "events," { print $5; exit }' "$tmp/transform")
    echo "  the transform alone, no store: $TRANSFORM $((2 * MAP_N)) $FIXTURE scripts: $(cat "$tmp/transform")"
    echo "  one tenant, workers = 1 vs the transform alone: $(calc 'sprintf("%.2fx", a / b)' "$one_tenant_rate" "$transform_rate")" \
         "($one_tenant_rate events/s / $transform_rate events/s/core)"
  else
    echo "  the transform alone: skipped ($TRANSFORM missing or failed; make $TRANSFORM)"
  fi
}

# --------------------------------------------------------------------------------------------------
# 4: end to end to the stand-in, limits lifted; the stand-in alone beside it

# Starts the stand-in once (limits lifted); sets standin_pid and standin_url.
standin_url=""
start_standin() {
  [ -n "$standin_url" ] && return 0
  mkdir -p "$tmp/standin"
  "$PYTHON" "$STANDIN" --port 0 --no-limits --quiet --watch-pid $$ >"$tmp/standin/out" 2>"$tmp/standin/err" &
  standin_pid=$!
  pids="$pids $standin_pid"
  i=0
  while [ $i -lt 200 ] && [ -z "$standin_url" ]; do
    standin_url=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/http:\/\/\1/p' "$tmp/standin/out")
    [ -n "$standin_url" ] && break
    kill -0 "$standin_pid" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
  done
  [ -n "$standin_url" ] || { cat "$tmp/standin/err" >&2; fail "the Klaviyo stand-in did not start"; }
}

phase_e2e() {
  start_standin

  # The stand-in alone: one request returnflow sends for the fixture, posted by wrk over 32 connections
  # (deliver.c's MAX_IN_FLIGHT per tenant).
  "$BIN" map --scripts scripts "$FIXTURE" >"$tmp/standin/map" 2>/dev/null || fail "returnflow map $FIXTURE failed"
  first_request "$tmp/standin/map" "$tmp/standin/body" >"$tmp/standin/path" ||
    fail "no event request in the map output of $FIXTURE"
  standin_target="$standin_url$(sed -n 1p "$tmp/standin/path")"
  unique_id=$(sed -n 2p "$tmp/standin/path")
  echo "the stand-in alone: BODY=<the fixture's first Klaviyo request> VARY=<its unique_id> wrk -t$WRK_THREADS -c32" \
       "-d${STANDIN_SECONDS}s -s bench/wrk_post.lua $standin_target"
  standin_cpu0=$(cpu_of "$standin_pid")
  BODY=$tmp/standin/body CONTENT_TYPE=application/vnd.api+json VARY=$unique_id \
    HEADERS="Accept: application/vnd.api+json|revision: 2026-07-15|Authorization: Klaviyo-API-Key $KEY" \
    wrk -t"$WRK_THREADS" -c32 -d"${STANDIN_SECONDS}s" -s bench/wrk_post.lua "$standin_target" >"$tmp/standin/wrk" 2>&1
  standin_cpu1=$(cpu_of "$standin_pid")
  grep -q '^wrk-summary' "$tmp/standin/wrk" || { cat "$tmp/standin/wrk" >&2; fail "wrk printed no summary"; }
  standin_rate=$(calc 'int((a - b) / c)' "$(field requests "$tmp/standin/wrk")" "$(field non2xx "$tmp/standin/wrk")" \
                      "$(field seconds "$tmp/standin/wrk")")
  echo "  $(field requests "$tmp/standin/wrk") answers, $(field non2xx "$tmp/standin/wrk") non-2xx: $standin_rate requests/s," \
       "each a new event (its own unique_id); the stand-in used" \
       "$(calc 'sprintf("%.2f", (a - b) / c)' "$standin_cpu1" "$standin_cpu0" "$(field seconds "$tmp/standin/wrk")") cores"
  sleep 1                           # the stand-in answers what wrk left in flight, then forgets all
  curl -s -X POST "$standin_url/_standin/reset" >/dev/null

  d=$tmp/e2e
  mkdir -p "$d"
  write_config "$d" "$(keyed_tenant shop "$standin_url")" 0
  make_store "$d"
  prefill "$d" "$E2E_N" "'shop'"
  echo "end to end: $E2E_N events journaled before start (tenant shop, a profile each), delivered to" \
       "$STANDIN --no-limits, rate_scale = 1000; timed from start until the tenant has nothing journaled, scheduled or queued"
  standin_cpu0=$(cpu_of "$standin_pid")
  t0=$(now)
  start_serve "$d"
  s=$(wait_zero "$d" "$t0" "SELECT (SELECT count(*) FROM events WHERE tenant = 'shop' AND state = 0)
    + (SELECT count(*) FROM schedules WHERE tenant = 'shop') + (SELECT count(*) FROM outbox WHERE tenant = 'shop' AND state = 0)" \
    "$serve_pid") || exit 1
  cpu=$(cpu_of "$serve_pid")
  standin_cpu1=$(cpu_of "$standin_pid")
  stop "$serve_pid"
  delivered=$(sql "$d" "SELECT count(*) FROM outbox WHERE state = 1")
  dead=$(sql "$d" "SELECT count(*) FROM outbox WHERE state = 2")
  stats=$(curl -s "$standin_url/_standin/stats" | standin_stats)
  # shellcheck disable=SC2086  # three numbers, split on purpose
  set -- $stats
  e2e_rate=$(calc 'int(a / b)' "$E2E_N" "$s")
  e2e_requests=$(calc 'int(a / b)' "$delivered" "$s")
  printf '  %s events in %.2f s = %s events/s delivered (%s requests/s: %s delivered, %s dead); serve used %.2f cores, the stand-in %.2f\n' \
         "$E2E_N" "$s" "$e2e_rate" "$e2e_requests" "$delivered" "$dead" "$(calc 'a / b' "$cpu" "$s")" \
         "$(calc '(a - b) / c' "$standin_cpu1" "$standin_cpu0" "$s")"
  echo "  the stand-in: $1 events accepted, $2 deduplicated, $3 requests answered;" \
       "requests/s vs the stand-in alone: $(calc 'sprintf("%.2fx", a / b)' "$e2e_requests" "$standin_rate") ($e2e_requests / $standin_rate)"
  rm -rf "$d"
}

# --------------------------------------------------------------------------------------------------
# 5: RSS with a large queue
phase_rss() {
  start_standin
  d=$tmp/rss
  mkdir -p "$d"
  write_config "$d" "$(keyed_tenant shop "$standin_url")" 0
  avail=$(df -Pk "$d" | awk 'NR == 2 { print $4 }')
  need=$((RSS_N * 12))                # kB: the body, its outbox rows and the index, with room
  if [ "$avail" -lt "$need" ]; then
    echo "RSS with $RSS_N events queued: skipped: $((avail / 1024)) MiB free under $d, about $((need / 1024)) MiB needed"
    return 0
  fi
  make_store "$d"
  t0=$(now)
  prefill "$d" "$RSS_N" "'shop'"
  echo "RSS: $RSS_N events journaled before start ($(calc 'sprintf("%.0f", a - b)' "$(now)" "$t0") s to fill), tenant shop" \
       "delivering to the stand-in as above; serve runs ${RSS_SECONDS}s, /proc/PID/status read every 0.5 s"
  start_serve "$d"
  rss0=$(vm_of "$serve_pid" VmRSS)
  rss=$rss0
  trend=""
  n=0
  t0=$(now)
  while [ "$(calc 'a - b < c' "$(now)" "$t0" "$RSS_SECONDS")" = 1 ]; do
    kill -0 "$serve_pid" 2>/dev/null || { cat "$d/serve.err" >&2; fail "serve exited during the RSS run"; }
    rss=$(vm_of "$serve_pid" VmRSS)
    [ $((n % 10)) = 0 ] && trend="$trend $((rss / 1024))"
    n=$((n + 1))
    sleep 0.5
  done
  hwm=$(vm_of "$serve_pid" VmHWM)
  cpu=$(cpu_of "$serve_pid")
  stop "$serve_pid"
  journaled=$(sql "$d" "SELECT count(*) FROM events WHERE tenant = 'shop' AND state = 0")
  queued=$(sql "$d" "SELECT count(*) FROM outbox WHERE tenant = 'shop' AND state = 0")
  delivered=$(sql "$d" "SELECT count(*) FROM outbox WHERE tenant = 'shop' AND state = 1")
  echo "  peak RSS (VmHWM) $((hwm / 1024)) MiB ($hwm kB); VmRSS $((rss0 / 1024)) MiB at start, $((rss / 1024)) MiB at the last read;" \
       "serve used $(calc 'sprintf("%.2f", a / b)' "$cpu" "$RSS_SECONDS") cores"
  mapped=$((RSS_N - journaled))
  echo "  VmRSS every 5 s, MiB:$trend; it grew $(((rss - rss0) / 1024)) MiB while $mapped events were mapped" \
       "($([ "$mapped" -gt 0 ] && calc 'int((a - b) * 1024 / c)' "$rss" "$rss0" "$mapped" || echo "?") B per event mapped)"
  echo "  at the end: $journaled events still journaled, $queued requests queued in the outbox, $delivered delivered;" \
       "goal: RSS under 100 MiB with 1000000 events queued$([ "$RSS_N" -lt 1000000 ] && echo " (this run: $RSS_N; BIG=1 for 1000000)")"
  rm -rf "$d"
}

# --------------------------------------------------------------------------------------------------
# 6: acked webhooks/s on PostgreSQL. The cluster runs as nobody when this runs as root (PostgreSQL
# refuses root), in the scratch folder, on a unix socket there; stopped (immediate) at the phase's end.
pg_cpu() {            # CPU seconds of every process of the cluster (postmaster, backends, walwriter...)
  total=0
  for p in $(pgrep -u "$pg_user" -f "postgres" 2>/dev/null); do
    total=$(calc 'a + b' "$total" "$(cpu_of "$p")")
  done
  echo "$total"
}
# pg_up DIR: a private PostgreSQL in DIR/pg (fsync and synchronous_commit on, a unix socket there, no
# TCP); sets as (the command prefix that runs as its user), pg_user and store (the URL serve is given).
pg_up() {
  d=$1
  mkdir -p "$d/pg"
  as=""
  pg_user=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    as="runuser -u nobody --"
    pg_user=nobody
    chmod o+x "$tmp"
    chown nobody: "$d/pg"
  fi
  $as "$PG_BIN/initdb" -A trust -U "$pg_user" -E UTF8 --locale=C -D "$d/pg/data" >"$d/initdb.log" 2>&1 \
    || { cat "$d/initdb.log" >&2; fail "initdb failed"; }
  printf "unix_socket_directories='%s'\nlisten_addresses=''\nfsync=on\nsynchronous_commit=on\nshared_buffers=128MB\n" \
    "$d/pg" >>"$d/pg/data/postgresql.auto.conf"
  $as "$PG_BIN/pg_ctl" -w -D "$d/pg/data" -l "$d/pg/server.log" start >/dev/null || fail "PostgreSQL did not start"
  pids="$pids $(head -n 1 "$d/pg/data/postmaster.pid")"
  $as "$PG_BIN/createdb" -h "$d/pg" returnflow || fail "createdb failed"
  store="postgresql://$pg_user@/returnflow?host=$d/pg"
}
pg_down() { $as "$PG_BIN/pg_ctl" -D "$1/pg/data" stop -m immediate >/dev/null 2>&1; }
psql_in() { $as "$PG_BIN/psql" -h "$1/pg" -d returnflow -Atc "$2"; }

phase_ack_pg() {
  [ -x "$PG_BIN/initdb" ] || { echo "acked webhooks on PostgreSQL: skipped, $PG_BIN/initdb missing (make deps)"; return 0; }
  d=$tmp/ack_pg
  pg_up "$d"
  printf 'return {\n  listen = "127.0.0.1:0", data = "%s/data", workers = 0, store = { url = "%s" },\n  tenants = { %s },\n}\n' \
    "$d" "$store" "$(dry_tenant bench)" >"$d/returnflow.conf.lua"
  start_serve "$d"
  url="http://$serve_addr/v1/webhooks/bench"
  first=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
               -H "X-Loop-Signature: $signature" --data-binary "@$FIXTURE" "$url")
  [ "$first" = 202 ] || fail "a signed $FIXTURE got $first, not 202, from $url: $(cat "$d/serve.err")"
  echo "acked webhooks on PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }') (fsync on, synchronous_commit on," \
       "unix socket): the same wrk command, serve with store.url"
  cpu0=$(cpu_of "$serve_pid"); pcpu0=$(pg_cpu)
  BODY=$FIXTURE SIGNATURE=$signature wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" \
    -s bench/wrk_post.lua "$url" >"$d/wrk" 2>&1
  cpu1=$(cpu_of "$serve_pid"); pcpu1=$(pg_cpu)
  pg_mapped=$($as "$PG_BIN/psql" -h "$d/pg" -d returnflow -Atc "SELECT count(*) FROM events WHERE state > 0")
  stop "$serve_pid"
  grep -q '^wrk-summary' "$d/wrk" || { cat "$d/wrk" >&2; fail "wrk printed no summary"; }
  requests=$(field requests "$d/wrk"); seconds=$(field seconds "$d/wrk"); non2xx=$(field non2xx "$d/wrk")
  acked=$((requests - non2xx))
  pg_rate=$(calc 'int(a / b)' "$acked" "$seconds")
  printf '  %s answers in %s s: %s acked webhooks/s; p50 %s ms, p99 %s ms, max %s ms; non-2xx: %s\n' "$requests" \
         "$seconds" "$pg_rate" "$(calc 'a / 1000' "$(field p50_us "$d/wrk")")" \
         "$(calc 'a / 1000' "$(field p99_us "$d/wrk")")" "$(calc 'a / 1000' "$(field max_us "$d/wrk")")" "$non2xx"
  echo "  $pg_mapped of them mapped meanwhile; CPU per 1,000 acked: serve" \
       "$(calc 'sprintf("%.3f", (a - b) * 1000 / c)' "$cpu1" "$cpu0" "$acked") s, PostgreSQL" \
       "$(calc 'sprintf("%.3f", (a - b) * 1000 / c)' "$pcpu1" "$pcpu0" "$acked") s (its processes running at the end)"
  if [ -n "${ack_rate:-}" ]; then
    echo "  vs SQLite (phase ack, this run): $(calc 'sprintf("%.2fx", a / b)' "$pg_rate" "$ack_rate") ($pg_rate / $ack_rate acked webhooks/s)"
  fi
  $as "$PG_BIN/pg_ctl" -D "$d/pg/data" stop -m immediate >/dev/null 2>&1
  rm -rf "$d"
}

# --------------------------------------------------------------------------------------------------
# 7 (cluster): two nodes on one PostgreSQL (docs/scale-out.md), four dry tenants spread over them by
# their leases. Acked webhooks/s with two nodes (two wrk, half the connections each, one a node, at
# once); mapping events/s from a journal filled before start, one node and then two; the CPU seconds
# per 1,000 webhooks acked and mapped (the nodes with their mapping workers, and PostgreSQL); the time
# from a kill -9 of a node to the first event of one of its tenants mapped by the other.
tree_cpu() {          # CPU seconds of a process, its children gone (waited for) and those alive
  total=$(awk -v t="$ticks" '{ print ($14 + $15 + $16 + $17) / t }' "/proc/$1/stat" 2>/dev/null || echo 0)
  for c in $(pgrep -P "$1" 2>/dev/null); do total=$(calc 'a + b' "$total" "$(cpu_of "$c")"); done
  echo "$total"
}
node_config() {       # node_config NODE: its folder $c/NODE with a config naming it
  mkdir -p "$c/$1"
  tenants=""
  for t in t1 t2 t3 t4; do tenants="$tenants $(dry_tenant "$t")"; done
  printf 'return {\n  listen = "127.0.0.1:0", data = "%s/data", workers = 0, node = "%s",\n  store = { url = "%s" },\n  tenants = { %s },\n}\n' \
    "$c/$1" "$1" "$store" "$tenants" >"$c/$1/returnflow.conf.lua"
}
start_node() {        # start_node NODE: sets NODE_pid and NODE_addr
  start_serve "$c/$1"
  eval "$1_pid=$serve_pid; $1_addr=$serve_addr"
}
wait_mapped() {       # wait_mapped T0: until no event is journaled (state 0); prints the seconds since T0
  while [ "$(psql_in "$c" "SELECT count(*) FROM events WHERE state = 0")" != 0 ]; do
    [ "$(calc 'a - b > c' "$(now)" "$1" "$TIMEOUT")" = 1 ] && fail "events still journaled after ${TIMEOUT}s"
    sleep 0.1
  done
  calc 'a - b' "$(now)" "$1"
}
pg_reset() {          # the store emptied, the nodes stopped before forgotten and their leases freed
  psql_in "$c" "TRUNCATE events, outbox, schedules, memory, body_parts RESTART IDENTITY; DELETE FROM queue_counts;
    DELETE FROM nodes; UPDATE leases SET node = NULL, expires_at = 0, wanted_by = NULL" >/dev/null \
    || fail "cannot reset the store"
}
pg_prefill() {        # pg_prefill N: N journaled events over t1..t4, each its own return and customer
  version=$(ls "$c/n1/data/scripts/t1" | grep -v '\.' | head -n 1)
  psql_in "$c" "INSERT INTO events(tenant, received_at, body, script_version)
      SELECT 't' || (1 + i % 4), (extract(epoch FROM now()) * 1000)::bigint,
             replace(replace(\$rf\$$(cat "$FIXTURE")\$rf\$, '\"$return_id\"', '\"' || ($return_id * 10 + i) || '\"'),
                     '$email_user@', '$email_user+' || i || '@'), '$version'
      FROM generate_series(1, $1) AS i" >/dev/null || fail "cannot fill the journal"
}
settled() {           # settled NODES: each of NODES holds a lease, all 4 are held, no handover pending
  want=$(echo $1 | wc -w)
  [ "$(psql_in "$c" "SELECT count(DISTINCT node) || ' ' || count(node) || ' ' || count(wanted_by) FROM leases")" = "$want 4 0" ]
}
wait_settled() {
  i=0
  until settled "$1"; do
    i=$((i + 1)); [ $i -gt 400 ] && fail "the leases did not settle on $1 in 40 s: $(psql_in "$c" "SELECT * FROM leases")"
    sleep 0.1
  done
}

phase_cluster() {
  [ -x "$PG_BIN/initdb" ] || { echo "cluster: skipped, $PG_BIN/initdb missing (make deps)"; return 0; }
  c=$tmp/cluster
  pg_up "$c"
  node_config n1; node_config n2
  start_node n1; start_node n2
  wait_settled "n1 n2"
  echo "cluster: two nodes (n1, n2) on one PostgreSQL (fsync on, synchronous_commit on, unix socket), four dry" \
       "tenants spread by their leases ($(psql_in "$c" "SELECT node || ':' || count(*) FROM leases GROUP BY node ORDER BY node" | tr '\n' ' '))"
  postmaster=$(head -n 1 "$c/pg/data/postmaster.pid")
  cpu0=$(calc 'a + b + c' "$(tree_cpu "$n1_pid")" "$(tree_cpu "$n2_pid")" "$(tree_cpu "$postmaster")")
  t0=$(now)
  half=$((WRK_CONNECTIONS / 2))
  for n in n1 n2; do
    eval "addr=\$${n}_addr"
    BODY=$FIXTURE SIGNATURE=$signature wrk -t1 -c"$half" -d"${WRK_SECONDS}s" -s bench/wrk_post.lua \
      "http://$addr/v1/webhooks/t1" >"$c/$n.wrk" 2>&1 &
    eval "${n}_wrk=$!"
  done
  wait "$n1_wrk"; wait "$n2_wrk"
  acked=0; worst=0
  for n in n1 n2; do
    grep -q '^wrk-summary' "$c/$n.wrk" || { cat "$c/$n.wrk" >&2; fail "wrk printed no summary"; }
    acked=$((acked + $(field requests "$c/$n.wrk") - $(field non2xx "$c/$n.wrk")))
    worst=$(calc 'a > b ? a : b' "$(field p99_us "$c/$n.wrk")" "$worst")
  done
  seconds=$(field seconds "$c/n1.wrk")
  echo "  acked webhooks, two nodes at once (wrk -t1 -c$half -d${WRK_SECONDS}s each, tenant t1 at both):" \
       "$(calc 'int(a / b)' "$acked" "$seconds")/s; p99 $(calc 'a / 1000' "$worst") ms (the worse node's)"
  map_s=$(wait_mapped "$t0")
  cpu1=$(calc 'a + b + c' "$(tree_cpu "$n1_pid")" "$(tree_cpu "$n2_pid")" "$(tree_cpu "$postmaster")")
  echo "  those $acked mapped $(calc 'sprintf("%.1f", a - b)' "$map_s" "$seconds") s after the burst ended;" \
       "CPU per 1,000 webhooks acked and mapped, both nodes, their mapping workers and PostgreSQL:" \
       "$(calc 'sprintf("%.2f", (a - b) * 1000 / c)' "$cpu1" "$cpu0" "$acked") s"

  for nodes in "n1" "n1 n2"; do
    stop "$n1_pid"; stop "$n2_pid"
    pg_reset
    for n in $nodes; do start_node "$n"; done
    wait_settled "$nodes"
    t0=$(now)
    pg_prefill "$MAP_N"
    s=$(wait_mapped "$t0")
    echo "  mapping $MAP_N events journaled while $(echo $nodes | wc -w) node(s) ran ($nodes, leases settled):" \
         "$(calc 'int(a / b)' "$MAP_N" "$s") events/s ($(calc 'sprintf("%.2f", a)' "$s") s from the insert's start)"
  done

  victim_tenant=$(psql_in "$c" "SELECT tenant FROM leases WHERE node = 'n2' ORDER BY tenant LIMIT 1")
  [ -n "$victim_tenant" ] || fail "n2 holds no tenant"
  stop "$n2_pid"
  t0=$(now)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
              -H "X-Loop-Signature: $signature" --data-binary "@$FIXTURE" "http://$n1_addr/v1/webhooks/$victim_tenant")
  [ "$code" = 202 ] || { tail -n 20 "$c/n1/serve.err" >&2; fail "n1 answered $code for $victim_tenant"; }
  s=$(wait_mapped "$t0")
  echo "  kill -9 of n2: its tenant $victim_tenant's next webhook (acked by n1) mapped by n1 $(calc 'sprintf("%.1f", a)' "$s") s" \
       "after the kill (the lease runs out: STORE_LEASE_TTL_MS, then n1 takes it); goal <= 15 s"
  echo "  what this is and is not: both nodes, wrk and PostgreSQL share the same $(nproc) cores, so two nodes" \
       "cannot show scaling here; size a cluster from the CPU per 1,000 webhooks."
  stop "$n1_pid"
  pg_down "$c"
  rm -rf "$c"
}

for phase in $PHASES; do
  case $phase in
    ack|ack_pg|map|e2e|rss|cluster) "phase_$phase" ;;
    *) fail "unknown phase '$phase' in PHASES (ack ack_pg map e2e rss cluster)" ;;
  esac
done
