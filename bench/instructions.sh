#!/bin/sh
# `make bench-instructions`: instructions per event, counted by callgrind, which machine noise does not
# move (the rates of `make bench` do). For each program: the instructions of a run of 3000 events minus
# those of a run of 1000, over 2000, so start-up and loading cancel out.
#
#   returnflow, default scripts:  build/bench_transform N FIXTURE scripts
#   returnflow, anchors' mapping: build/bench_transform N FIXTURE bench/anchor-mapping (equal work)
#   bare Lua+cjson anchor:        lua5.4 bench/anchors/bare_transform.lua FIXTURE N
#   returnflow map, whole process: build/returnflow map -q FILE, FILE N copies of FIXTURE as NDJSON
#                                  (reading, validating, mapping and writing each line)
#
# The Node.js anchor is not counted: V8 compiles the mapping to machine code as it runs, so its
# instruction count under callgrind is not its count outside it. Run from the repository root after
# `make build build/bench_transform`. Installs nothing.
#
# FIXED_TIME=1 makes time() answer one value (the time this script started) in every run, through an
# LD_PRELOAD shim compiled here with cc: Lua seeds its string hashes with time(), so runs of one
# build differ by up to 2,000 instructions an event unfixed; fixed, two builds compare step by step.
set -u

BUILD=${BUILD:-build}
FIXTURE=${FIXTURE:-fixtures/loop/return.created.json}
BENCH=$BUILD/bench_transform

command -v valgrind >/dev/null 2>&1 || { echo "bench-instructions: valgrind not found (apt-get install -y valgrind)" >&2; exit 2; }
[ -x "$BENCH" ] || { echo "bench-instructions: $BENCH missing: run 'make build $BENCH' first" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

preload=""
if [ "${FIXED_TIME:-0}" = 1 ]; then
  now=$(date +%s)
  printf '#include <time.h>\ntime_t time(time_t *t) { if (t) *t = %s; return %s; }\n' "$now" "$now" >"$tmp/fixtime.c"
  ${CC:-cc} -O2 -shared -fPIC -o "$tmp/fixtime.so" "$tmp/fixtime.c" ||
    { echo "bench-instructions: cannot build the fixed time() shim (FIXED_TIME=1)" >&2; exit 2; }
  preload="LD_PRELOAD=$tmp/fixtime.so"
fi

# Instructions callgrind collected for one run of the command.
collected() {
  # shellcheck disable=SC2086  # $preload: empty, or one word (mktemp's folder holds no space)
  env $preload valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$@" >"$tmp/out" 2>"$tmp/err" ||
    { echo "bench-instructions: failed: $*" >&2; cat "$tmp/err" >&2; exit 1; }
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/err"
}

per_event() {   # label, then the command with N in place of the count
  label=$1; shift
  a=$(collected $(echo "$@" | sed 's/\bN\b/1000/'))
  b=$(collected $(echo "$@" | sed 's/\bN\b/3000/'))
  printf '  %-30s %8d instructions/event\n' "$label" $(( (b - a) / 2000 ))
}

echo "instructions per event (callgrind, (3000 events - 1000 events) / 2000), $FIXTURE${preload:+, time() fixed}"
per_event "returnflow, default scripts" "$BENCH N $FIXTURE scripts"
per_event "returnflow, anchors' mapping" "$BENCH N $FIXTURE bench/anchor-mapping"
if command -v lua5.4 >/dev/null 2>&1; then
  per_event "bare Lua+cjson anchor" "lua5.4 bench/anchors/bare_transform.lua $FIXTURE N"
else
  echo "  bare Lua+cjson anchor: skipped: lua5.4 not found"
fi
# returnflow map reads its events from a file: one of N lines for each count, the fixture on one line.
ndjson() { tr -d '\n' <"$FIXTURE" >"$tmp/line" && echo >>"$tmp/line" &&
           i=0; : >"$tmp/events-$1.ndjson"; while [ $i -lt "$1" ]; do cat "$tmp/line"; i=$((i + 1)); done >"$tmp/events-$1.ndjson"; }
if [ -x "$BUILD/returnflow" ] && ndjson 1000 && ndjson 3000; then
  per_event "returnflow map, whole process" "$BUILD/returnflow map -q $tmp/events-N.ndjson"
else
  echo "  returnflow map, whole process: skipped: $BUILD/returnflow missing (make build)"
fi
echo "  Node.js anchor: not counted (JIT-compiled: callgrind's count is not its own)"
