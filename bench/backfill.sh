#!/bin/sh
# `make bench`, after bench/serve.sh: `returnflow send` backfilling N events (100,000; BIG=1: 1,000,000)
# into the Klaviyo stand-in, in up to three runs (PHASES, default "limits lifted checked"):
#
#   limits   the stand-in with Klaviyo's real limits (bulk: 10/s burst, 150/min steady, 1000 events a
#            request): the Klaviyo events delivered per second of `send`'s wall time, as a fraction of
#            the ceiling those limits allow; peak RSS of `send`; the 429s it met;
#   lifted   the stand-in's limits lifted (--no-limits, rate_scale = 1000): events/s end to end;
#   checked  as lifted, but the stand-in checks every body against Klaviyo's OpenAPI spec, as in the
#            tests (CHECKED_N events, default 100,000: the stand-in keeps all it accepts in memory).
#
# limits and lifted run the stand-in with --count-only: its event endpoints count the events of a request
# (a byte scan) and answer, with no JSON parsing, schema validation or dedup. Validating costs it ~0.3 s
# of CPU a 1000-event bulk request, more than the 0.1 s a request the burst limit allows, on a 2-core
# machine shared with `send`: checked shows what that costs. Each run prints the stand-in's own CPU time.
#
# The ceiling: R = ceil(E / 1000) bulk requests for the E Klaviyo events delivered (counted by the
# stand-in and marked delivered in the outbox); the time of the R-th request when the first goes at t = 0,
# under the stand-in's limiter (a sliding log: at most 10 requests in any 1 s and 150 in any 60 s, as
# deliver.c paces), and beside it under two token buckets that start full (10 refilled at 10/s, 150 at
# 2.5/s), which allow ~150 more requests in the first minute. Ceiling events/s = E / that time;
# achieved = E / the wall time of send, from its start to its exit (mapping, delivery of every request,
# the reminders fired at the end). Printed with it: when all input was read, and what the stand-in had then;
# and over how long the held scheduled events went into the queue once it was.
#
# The input: N copies of FIXTURE (default return.created.json), each its own return (id) and customer
# (email), so every unique_id and profile differs; written once to $BUILD/bench/ as NDJSON and reused.
# With the default scripts a return.created gives 3 Klaviyo events: "Loop Return Created", and two
# scheduled reminders whose due times are past, held until all input is read, then fired.
#
# Every run uses a fresh data folder under $BUILD, removed at exit with every process started here.
# A send that has not exited after TIMEOUT seconds (default: 3 x ceiling + 300 s; lifted: 300 + N / 200)
# is interrupted, and what its outbox still holds is printed. Run from the repository root after
# `make build`. Installs nothing; needs sqlite3, curl, Debian's python3 with python3-jsonschema (the
# stand-in), and GNU time (/usr/bin/time; else VmHWM is read from /proc every 0.5 s).
set -u

BUILD=${BUILD:-build}
FIXTURE=${FIXTURE:-fixtures/loop/return.created.json}
BIG=${BIG:-0}
if [ "$BIG" = 1 ]; then N=${N:-1000000}; else N=${N:-100000}; fi
CHECKED_N=${CHECKED_N:-100000}
PHASES=${PHASES:-limits lifted checked}
TIMEOUT=${TIMEOUT:-}

PYTHON=/usr/bin/python3               # Debian's: python3-jsonschema is there, for the stand-in
STANDIN=spec/standin/klaviyo_standin.py
BIN=$BUILD/returnflow
KEY=pk_bench_0123456789abcdef         # any pk_ key: the stand-in accepts every one unless told
GOAL_FRACTION=0.95
GOAL_RSS_MB=100
GOAL_LIFTED=20000                     # the pipeline issue's (events/s end to end, limits lifted)

[ -x "$BIN" ] || { echo "bench: $BIN missing: run 'make build' first" >&2; exit 2; }
[ -r "$FIXTURE" ] || { echo "bench: fixture $FIXTURE not readable" >&2; exit 2; }
for tool in sqlite3 curl pgrep "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found (make deps)" >&2; exit 2; }
done
TIME=/usr/bin/time
[ -x "$TIME" ] && "$TIME" -f %M true >/dev/null 2>&1 || TIME=""

mkdir -p "$BUILD/bench" || exit 2
. bench/lib.sh
bench_setup backfill
# CPU seconds a process has used (user + system), from /proc.
cpu_of() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# thread_cpu PID: the CPU seconds of each thread of PID by name (send's main thread "returnflow",
# "rf-deliver", ...), and of its mapping worker processes, one line.
thread_cpu() {
  { for t in /proc/"$1"/task/*; do
      printf '%s %s\n' "$(cat "$t/comm" 2>/dev/null)" "$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null)"
    done
    for k in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
      printf 'mapping-worker %s\n' "$(awk '{ print $14 + $15 }' "/proc/$k/stat" 2>/dev/null)"
    done
  } | awk -v t="$ticks" 'NF == 2 { s[$1] += $2 } END { for (k in s) printf "%s %.2f s, ", k, s[k] / t }' | sed 's/, $//'
}
vm_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
fail() { echo "bench: $*" >&2; exit 1; }

# Seconds until the R-th of R requests may go, the first at t = 0 (empty: R <= 0).
# Token buckets that start full: 10 tokens refilled at 10/s, 150 refilled at 150/60 s; a request takes one of each.
ceiling_buckets() {
  awk -v r="$1" 'BEGIN {
    t = 0; a = 10; b = 150
    for (i = 1; i <= r; i++) {
      dt = 0
      if (a < 1 - 1e-9) { x = (1 - a) / 10; if (x > dt) dt = x }
      if (b < 1 - 1e-9) { x = (1 - b) / 2.5; if (x > dt) dt = x }
      t += dt; a += dt * 10; if (a > 10) a = 10; b += dt * 2.5; if (b > 150) b = 150
      a -= 1; b -= 1
    }
    if (r > 0) printf "%.3f\n", t }'
}
# The stand-in's limiter (a sliding log): request i waits for i-10 to be 1 s old and i-150 to be 60 s old.
ceiling_window() {
  awk -v r="$1" 'BEGIN {
    for (i = 1; i <= r; i++) {
      t[i] = i > 1 ? t[i - 1] : 0
      if (i > 10 && t[i - 10] + 1 > t[i]) t[i] = t[i - 10] + 1
      if (i > 150 && t[i - 150] + 60 > t[i]) t[i] = t[i - 150] + 60
    }
    if (r > 0) printf "%.3f\n", t[r] }'
}

# --------------------------------------------------------------------------------------------------
# the input, written once

# The Klaviyo events `returnflow map` makes of the fixture: requests now, and scheduled ones.
per_event=$("$BIN" map --scripts scripts "$FIXTURE" 2>/dev/null | "$PYTHON" -c 'import json, sys
d = json.loads(sys.stdin.readline())
print(len(d.get("requests") or []), len(d.get("scheduled") or []))') || fail "returnflow map $FIXTURE failed"
# shellcheck disable=SC2086  # two numbers
set -- $per_event
now_requests=$1 scheduled_requests=$2

# make_input COUNT: prints the path of an NDJSON file of COUNT numbered copies of the fixture.
make_input() {
  f=$BUILD/bench/backfill-$(basename "$FIXTURE" .json)-$1.ndjson
  if [ -r "$f" ] && [ "$(wc -l <"$f" | tr -d ' ')" = "$1" ] && [ -n "$(find "$f" -newer "$FIXTURE")" ]; then echo "$f"; return 0; fi
  "$PYTHON" - "$FIXTURE" "$1" "$f.part" <<'EOF' || return 1
import json, re, sys
fixture, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
doc = json.load(open(fixture, encoding="utf-8"))
text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
rid = doc.get("id")
email = ((doc.get("customer_detail") or {}).get("email") or doc.get("customer") or "")
if not isinstance(rid, str) or "@" not in email:
    sys.exit("%s: no top-level string \"id\" or customer email to number the events by" % fixture)
user = email.split("@", 1)[0] + "@"
id_field = '"id":%s' % json.dumps(rid)
if text.count(id_field) != 1:
    sys.exit("%s: the return id %s occurs %d times in the compact text" % (fixture, rid, text.count(id_field)))
base = int(re.sub(r"\D", "", rid) or "1") * 10 ** 7
with open(out, "w", encoding="utf-8") as f:
    for i in range(1, n + 1):
        f.write(text.replace(id_field, '"id":"%d"' % (base + i)).replace(user, user[:-1] + "+%d@" % i) + "\n")
EOF
  mv "$f.part" "$f" && echo "$f"
}

# --------------------------------------------------------------------------------------------------
# one run: a stand-in, a data folder, `returnflow send`

# room COUNT NAME: fails the phase (return 1, with a line) when the disk under $BUILD cannot hold a run of COUNT
# events: the input (~3.5 kB an event) and the data folder, whose WAL send does not checkpoint (~25 kB).
room() {
  avail=$(df -Pk "$BUILD" | awk 'NR == 2 { print $4 }')
  need=$(($1 * 30))
  [ "$avail" -ge "$need" ] && return 0
  echo "backfill, $2: skipped: $((avail / 1024)) MiB free under $BUILD, about $((need / 1024)) MiB needed for $1 events"
  return 1
}

# start_standin DIR ARGS...: sets standin_pid and standin_url.
start_standin() {
  dir=$1; shift
  standin_cmd="$PYTHON $STANDIN --port 0 --quiet $*"
  "$PYTHON" "$STANDIN" --port 0 --quiet --watch-pid $$ "$@" >"$dir/standin.out" 2>"$dir/standin.err" &
  standin_pid=$!
  pids="$pids $standin_pid"
  standin_url=""
  i=0
  while [ $i -lt 200 ]; do
    standin_url=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/http:\/\/\1/p' "$dir/standin.out")
    [ -n "$standin_url" ] && return 0
    kill -0 "$standin_pid" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
  done
  cat "$dir/standin.err" >&2
  fail "the Klaviyo stand-in did not start"
}
stop() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# stats FIELD...: numbers from the stand-in's /_standin/stats: events_accepted, events_deduplicated,
# requests, bulk (bulk requests answered 202), single (/api/events answered 202), throttled (429s).
stats() {
  curl -s "$standin_url/_standin/stats" | "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin)
e = d["by_endpoint"]
v = dict(d, bulk=e.get("POST /api/event-bulk-create-jobs", {}).get("202", 0),
         single=e.get("POST /api/events", {}).get("202", 0),
         throttled=sum(c.get("429", 0) for c in e.values()))
print(" ".join(str(v[k]) for k in sys.argv[1:]))' "$@"
}

# run_send DIR INPUT RATE_SCALE TIMEOUT: `returnflow send` of INPUT into a fresh data folder, timed;
# sets wall, send_cpu, rss_kb, send_rc, read_at (seconds until all input was read and mapped: its job's
# row says reading = 0), accepted_at_read (events the stand-in had counted then), delivered_rows,
# retried_rows (delivered after more than one attempt), left_rows, timed_out.
run_send() {
  dir=$1
  cat >"$dir/returnflow.conf.lua" <<EOF
return {
  listen = "127.0.0.1:0", data = "$dir/data", workers = 1,
  tenants = { shop = { scripts = "$root/scripts", webhook_secret = "bench-secret",
    klaviyo = { key = "$KEY", base_url = "$standin_url", rate_scale = $3 } } },
}
EOF
  send_cmd="$BIN send --tenant shop -c $dir/returnflow.conf.lua $2"
  standin_cpu0=$(cpu_of "$standin_pid")
  rm -f "$dir/send.pid" "$dir/end" "$dir/rc"
  t0=$(now)
  # A subshell runs send (under GNU time, through a sh that writes its pid and execs it), then notes
  # when it exited: the loop below polls, the wall time does not depend on it.
  # shellcheck disable=SC2016,SC2086
  ( $TIME ${TIME:+-f '%M %U %S' -o "$dir/time"} sh -c 'echo $$ >"$0"; exec "$@"' "$dir/send.pid" $send_cmd \
      2>"$dir/send.err"
    echo $? >"$dir/rc"; now >"$dir/end" ) &
  wpid=$!
  pids="$pids $wpid"
  hwm=0 read_at="" accepted_at_read="" timed_out=0 spid="" threads=""
  while kill -0 "$wpid" 2>/dev/null; do
    if [ -z "$spid" ] && [ -s "$dir/send.pid" ]; then spid=$(cat "$dir/send.pid"); pids="$pids $spid"; fi
    if [ -n "$spid" ]; then
      h=$(vm_of "$spid" VmHWM)
      [ -n "$h" ] && [ "$h" -gt "$hwm" ] && hwm=$h
      t=$(thread_cpu "$spid")
      [ -n "$t" ] && threads=$t
    fi
    if [ -z "$read_at" ] && [ "$(sqlite3 -cmd '.timeout 2000' "$dir/data/returnflow.db" \
                                   "SELECT reading FROM jobs" 2>/dev/null)" = 0 ]; then
      read_at=$(calc 'a - b' "$(now)" "$t0")
      accepted_at_read=$(stats events_accepted)
    fi
    if [ "$timed_out" = 0 ] && [ "$(calc 'a - b > c' "$(now)" "$t0" "$4")" = 1 ]; then
      timed_out=1
      [ -n "$spid" ] && kill -INT "$spid" 2>/dev/null
      ( sleep 15; [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null ) &
      pids="$pids $!"
    fi
    sleep 0.5
  done
  wait "$wpid"
  send_rc=$(cat "$dir/rc" 2>/dev/null || echo "?")
  wall=$(calc 'a - b' "$(cat "$dir/end")" "$t0")
  standin_cpu=$(calc 'a - b' "$(cpu_of "$standin_pid")" "$standin_cpu0")
  if [ -n "$TIME" ] && [ -s "$dir/time" ]; then
    # shellcheck disable=SC2046
    set -- $(tail -n 1 "$dir/time")
    rss_kb=$1 send_cpu=$(calc 'a + b' "$2" "$3") rss_how="GNU time"
  else
    rss_kb=$hwm send_cpu="" rss_how="VmHWM read every 0.5 s"
  fi
  db=$dir/data/returnflow.db
  delivered_rows=$(sqlite3 "$db" "SELECT count(*) FROM outbox WHERE state = 1" 2>/dev/null)
  retried_rows=$(sqlite3 "$db" "SELECT count(*) FROM outbox WHERE state = 1 AND attempts > 1" 2>/dev/null)
  left_rows=$(sqlite3 "$db" "SELECT group_concat(n || ' in state ' || state, ', ') FROM
                             (SELECT state, count(*) n FROM outbox WHERE state <> 1 GROUP BY state)" 2>/dev/null)
  # The scheduled events, held until all input was read: how many, and over how long they were
  # moved into the queue (their rows' queue times).
  fired=$(sqlite3 -separator ' ' "$db" "SELECT count(*), coalesce((max(created_at) - min(created_at)) / 1000.0, 0)
                                        FROM outbox WHERE schedule_key IS NOT NULL" 2>/dev/null)
}

# The send's summary lines, indented.
send_summary() { grep -E '^(send: [0-9]+ events read|send: requests:|send: done|  (failed|dead):)' "$1/send.err" | sed 's/^/    /'; }

# --------------------------------------------------------------------------------------------------

phase_limits() {
  room "$N" limits || return 0
  input=$(make_input "$N") || fail "cannot write the input"
  d=$tmp/limits; mkdir -p "$d"
  expected=$((N * (now_requests + scheduled_requests)))
  r0=$(((expected + 999) / 1000))
  to=${TIMEOUT:-$(calc 'int(3 * a + 300)' "$(ceiling_window "$r0")")}
  start_standin "$d" --count-only
  echo "backfill at Klaviyo's limits: $N events of $(basename "$FIXTURE") ($now_requests request now and" \
       "$scheduled_requests scheduled each: $expected Klaviyo events expected), stand-in with real limits, --count-only"
  echo "  $standin_cmd; $BIN send --tenant shop -c CONFIG $input   (CONFIG: tenant shop, the default scripts," \
       "a pk_ key, base_url = the stand-in, rate_scale = 1; timeout ${to} s)"
  run_send "$d" "$input" 1 "$to"
  # shellcheck disable=SC2046
  set -- $(stats events_accepted requests bulk single throttled)
  events=$1 requests=$2 bulk=$3 single=$4 throttled=$5
  send_summary "$d"
  [ "$timed_out" = 1 ] && echo "  send did not exit within $to s: interrupted (exit $send_rc); outbox rows not delivered: ${left_rows:-none}"
  # E: the events both sides count: the stand-in's (with --count-only, a request sent twice counts twice)
  # and the outbox rows send marked delivered.
  e=$(calc 'a < b ? a : b' "$events" "${delivered_rows:-0}")
  r=$(((e + 999) / 1000))
  win=$(ceiling_window "$r") tb=$(ceiling_buckets "$r")
  achieved=$(calc 'a / b' "$e" "$wall")
  printf '  %s Klaviyo events delivered (the stand-in counted %s; %s outbox rows delivered, %s of them sent more than once)' \
         "$e" "$events" "$delivered_rows" "$retried_rows"
  printf ' in %.1f s = %.0f events/s; exit %s\n' "$wall" "$achieved" "$send_rc"
  echo "  requests: $bulk bulk (the events need $r of 1000), $single single /api/events, $throttled answered 429;" \
       "$requests in all"
  if [ -n "$win" ] && [ "$(calc 'a > 0' "$win")" = 1 ]; then
    printf '  ceiling for %s bulk requests, the first at t = 0, under the stand-in'"'"'s limiter (at most 10 in any 1 s' "$r"
    printf ' and 150 in any 60 s): %.1f s = %.0f events/s; fraction achieved: %.3f (goal >= %s)\n' \
           "$win" "$(calc 'a / b' "$e" "$win")" "$(calc 'a / (b / c)' "$achieved" "$e" "$win")" "$GOAL_FRACTION"
    printf '  the same under two token buckets that start full (10 refilled at 10/s, 150 at 2.5/s): %.1f s = %.0f events/s;' \
           "$tb" "$(calc 'a / b' "$e" "$tb")"
    printf ' fraction achieved: %.3f (a bucket lets ~150 more requests through in the first minute than the stand-in)\n' \
           "$(calc 'a / (b / c)' "$achieved" "$e" "$tb")"
  else
    echo "  ceiling: $r bulk requests all go at t = 0 (the burst is 10): there is no ceiling rate to compare with"
  fi
  if [ -n "$read_at" ]; then
    printf '  where the time went: all input read and mapped after %.1f s (%.0f events/s), when the stand-in had %s events;' \
           "$read_at" "$(calc 'a / b' "$N" "$read_at")" "$accepted_at_read"
    printf ' then %.1f s to deliver the rest\n' "$(calc 'a - b' "$wall" "$read_at")"
  fi
  # shellcheck disable=SC2086  # two numbers
  [ -n "${fired:-}" ] && set -- $fired && [ "$1" -gt 0 ] &&
    printf '  the %s scheduled events (held until all input was read) went into the queue over %.1f s\n' "$1" "$2"
  printf '  peak RSS of send: %.1f MiB (%s kB, %s); goal <= %s MB: %.2fx of it\n' "$(calc 'a / 1024' "$rss_kb")" "$rss_kb" \
         "$rss_how" "$GOAL_RSS_MB" "$(calc 'a * 1024 / (b * 1000000)' "$rss_kb" "$GOAL_RSS_MB")"
  printf '  CPU: send %s s; the stand-in %.1f s (%.0f%% of the wall time, one Python thread at a time)\n' \
         "${send_cpu:-?}" "$standin_cpu" "$(calc '100 * a / b' "$standin_cpu" "$wall")"
  echo "  CPU of send by thread (read every 0.5 s, the last reading before it exited): ${threads:-?}"
  stop "$standin_pid"
  rm -rf "$d"
}

# lifted_run NAME COUNT STANDIN_ARGS...: a run with the stand-in's limits lifted.
lifted_run() {
  name=$1 count=$2; shift 2
  room "$count" "$name" || return 0
  input=$(make_input "$count") || fail "cannot write the input"
  d=$tmp/$name; mkdir -p "$d"
  to=${TIMEOUT:-$((300 + count / 200))}
  start_standin "$d" --no-limits "$@"
  run_send "$d" "$input" 1000 "$to"
  # shellcheck disable=SC2046
  set -- $(stats events_accepted events_deduplicated requests bulk single)
  events=$1 dedup=$2 requests=$3 bulk=$4 single=$5
  echo "  $standin_cmd; $BIN send --tenant shop -c CONFIG $input   (CONFIG as above, rate_scale = 1000;" \
       "timeout ${to} s)"
  send_summary "$d"
  [ "$timed_out" = 1 ] && echo "  send did not exit within $to s: interrupted (exit $send_rc); outbox rows not delivered: ${left_rows:-none}"
  e=$(calc 'a < b ? a : b' "$events" "${delivered_rows:-0}")
  rate=$(calc 'a / b' "$e" "$wall")
  printf '  %s Klaviyo events delivered (the stand-in accepted %s and deduplicated %s; %s outbox rows delivered, %s sent' \
         "$e" "$events" "$dedup" "$delivered_rows" "$retried_rows"
  printf ' more than once) in %.1f s = %.0f events/s end to end;' "$wall" "$rate"
  printf ' goal >= %s/s: %.2fx; exit %s\n' "$GOAL_LIFTED" "$(calc 'a / b' "$rate" "$GOAL_LIFTED")" "$send_rc"
  echo "  requests: $bulk bulk, $single single /api/events, $requests in all"
  [ -n "$read_at" ] && printf '  all input read and mapped after %.1f s (%.0f events/s), when the stand-in had %s events\n' \
                              "$read_at" "$(calc 'a / b' "$count" "$read_at")" "$accepted_at_read"
  printf '  peak RSS of send: %.1f MiB (%s); CPU: send %s s, the stand-in %.1f s (%.0f%% of the wall time)\n' \
         "$(calc 'a / 1024' "$rss_kb")" "$rss_how" "${send_cpu:-?}" "$standin_cpu" "$(calc '100 * a / b' "$standin_cpu" "$wall")"
  echo "  CPU of send by thread (read every 0.5 s, the last reading before it exited): ${threads:-?}"
  stop "$standin_pid"
  rm -rf "$d"
}

phase_lifted() {
  echo "backfill, the stand-in's limits lifted (--no-limits --count-only: events counted, not parsed or validated):" \
       "$N events of $(basename "$FIXTURE")"
  lifted_run lifted "$N" --count-only
}

phase_checked() {
  echo "backfill, limits lifted, every body checked by the stand-in (--no-limits, OpenAPI schema, dedup, as in the tests):" \
       "$CHECKED_N events of $(basename "$FIXTURE")"
  lifted_run checked "$CHECKED_N"
}

echo "backfill benchmark: BIG=$BIG PHASES=\"$PHASES\" sh bench/backfill.sh (from the repository root, after make build)"
for phase in $PHASES; do
  case $phase in
    limits|lifted|checked) "phase_$phase" ;;
    *) fail "unknown phase '$phase' in PHASES (limits lifted checked)" ;;
  esac
done
