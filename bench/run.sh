#!/bin/sh
# `make bench`: returnflow's transform rate beside the two anchors of bench/anchors, in one run.
#
# All three decode a Loop webhook, map it and encode the Klaviyo body on one core with no I/O, and
# print events per second per core (CPU time; the Node.js anchor wall time). The machine is shared and noisy, so each program runs
# three times, interleaved (Lua, Node.js, returnflow, Lua, ...), and the best run of each is kept; the
# ratios are computed here from those best runs, never against a number written down earlier.
# Run from the repository root after `make build build/bench_transform`. Installs nothing.
set -u

BUILD=${BUILD:-build}
FIXTURE=${FIXTURE:-fixtures/loop/return.created.json}
ROUNDS=${ROUNDS:-3}
LUA_N=${LUA_N:-100000}
NODE_N=${NODE_N:-200000}
TARGET_SECONDS=${TARGET_SECONDS:-2.5}   # returnflow's N is sized for about this much CPU time
MAP_N=${MAP_N:-40000}                   # events of the whole-process `returnflow map` run

BENCH=$BUILD/bench_transform
LUA_ANCHOR=bench/anchors/bare_transform.lua
NODE_ANCHOR=bench/anchors/bare_transform.mjs

[ -x "$BENCH" ] || { echo "bench: $BENCH missing: run 'make build $BENCH' first" >&2; exit 2; }
[ -r "$FIXTURE" ] || { echo "bench: fixture $FIXTURE not readable" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

# The anchors' line: "N events, X us/event, Y events/s/core (in A B, out B B)"; prints Y.
rate() { awk '$2 == "events," && $6 ~ /^events\/s\/core/ { print $5; exit }' "$1"; }
# Prints B, the out bytes per event, when the line has them.
out_bytes() { awk '$2 == "events," && $10 == "out" { print $11; exit }' "$1"; }
# Keeps the larger of two rates (an empty one loses).
best() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }

# Which runners are here; a missing one is reported, never installed.
lua_skip=""
command -v lua5.4 >/dev/null 2>&1 || lua_skip="lua5.4 not found"
node_skip=""
command -v node >/dev/null 2>&1 || node_skip="node not found on PATH (the Node.js anchor needs Node.js; nothing was installed)"
for f in "$LUA_ANCHOR" "$NODE_ANCHOR"; do
  [ -r "$f" ] || { echo "bench: anchor $f not readable" >&2; exit 2; }
done

# Size returnflow's run from a short one, so each measurement takes about TARGET_SECONDS.
if ! "$BENCH" 2000 "$FIXTURE" scripts >"$tmp/cal" 2>"$tmp/cal.err"; then
  echo "bench: $BENCH failed:" >&2; cat "$tmp/cal.err" "$tmp/cal" >&2; exit 1
fi
RF_N=$(awk -v r="$(rate "$tmp/cal")" -v t="$TARGET_SECONDS" 'BEGIN { n = int(r * t / 1000) * 1000; print n < 2000 ? 2000 : n }')

echo "transform benchmark: $FIXTURE, one core, CPU time; best of $ROUNDS interleaved runs"
if [ -n "$lua_skip" ]; then echo "  bare Lua+cjson: skipped: $lua_skip"
else echo "  bare Lua+cjson: lua5.4 $LUA_ANCHOR $FIXTURE $LUA_N"; fi
if [ -n "$node_skip" ]; then echo "  Node.js:        skipped: $node_skip"
else echo "  Node.js:        node $NODE_ANCHOR $FIXTURE $NODE_N"; fi
echo "  returnflow:     $BENCH $RF_N $FIXTURE scripts"
echo "  returnflow, anchors' mapping: $BENCH $RF_N $FIXTURE bench/anchor-mapping"
[ -z "$node_skip" ] && echo "  (the Node.js anchor times wall clock, process.hrtime; the other two CPU time: on a loaded machine it reads low)"

lua_best="" node_best="" rf_best="" eq_best="" lua_out="" rf_out="" eq_out=""
round=1
while [ "$round" -le "$ROUNDS" ]; do
  echo "round $round"
  if [ -z "$lua_skip" ]; then
    if lua5.4 "$LUA_ANCHOR" "$FIXTURE" "$LUA_N" >"$tmp/lua" 2>&1 && [ -n "$(rate "$tmp/lua")" ]; then
      printf '  bare Lua+cjson  %s\n' "$(cat "$tmp/lua")"
      lua_best=$(best "$lua_best" "$(rate "$tmp/lua")")
      lua_out=$(out_bytes "$tmp/lua")
    else
      lua_skip="the Lua anchor failed: $(head -n 3 "$tmp/lua" | tr '\n' ' ')"
      echo "  bare Lua+cjson  skipped: $lua_skip"
    fi
  fi
  if [ -z "$node_skip" ]; then
    if node "$NODE_ANCHOR" "$FIXTURE" "$NODE_N" >"$tmp/node" 2>&1 && [ -n "$(rate "$tmp/node")" ]; then
      printf '  Node.js         %s\n' "$(cat "$tmp/node")"
      node_best=$(best "$node_best" "$(rate "$tmp/node")")
    else
      node_skip="the Node.js anchor failed: $(head -n 3 "$tmp/node" | tr '\n' ' ')"
      echo "  Node.js         skipped: $node_skip"
    fi
  fi
  if "$BENCH" "$RF_N" "$FIXTURE" scripts >"$tmp/rf" 2>"$tmp/rf.err" && [ -n "$(rate "$tmp/rf")" ]; then
    printf '  returnflow      %s\n' "$(cat "$tmp/rf")"
    rf_best=$(best "$rf_best" "$(rate "$tmp/rf")")
    rf_out=$(out_bytes "$tmp/rf")
  else
    echo "bench: $BENCH failed:" >&2; cat "$tmp/rf.err" "$tmp/rf" >&2; exit 1
  fi
  # The same host on the anchors' own mapping: equal work, so the host's cost shows alone.
  if "$BENCH" "$RF_N" "$FIXTURE" bench/anchor-mapping >"$tmp/eq" 2>"$tmp/eq.err" && [ -n "$(rate "$tmp/eq")" ]; then
    printf '  returnflow, anchors'"'"' mapping  %s\n' "$(cat "$tmp/eq")"
    eq_best=$(best "$eq_best" "$(rate "$tmp/eq")")
    eq_out=$(out_bytes "$tmp/eq")
  else
    echo "bench: $BENCH with bench/anchor-mapping failed:" >&2; cat "$tmp/eq.err" "$tmp/eq" >&2; exit 1
  fi
  round=$((round + 1))
done

[ -n "$lua_skip" ] && echo "bare Lua+cjson anchor skipped: $lua_skip"
[ -n "$node_skip" ] && echo "Node.js anchor skipped: $node_skip"

# x = returnflow's best rate over the anchor's best rate, or why there is none.
ratio() { [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || echo "$3"; }
r_lua=$(ratio "$rf_best" "$lua_best" "skipped")
r_node=$(ratio "$rf_best" "$node_best" "skipped")
echo "returnflow transform: $rf_best events/s/core; vs bare Lua+cjson: $r_lua; vs Node.js: $r_node"
echo "returnflow, anchors' mapping (equal work): $eq_best events/s/core; vs bare Lua+cjson:" \
     "$(ratio "$eq_best" "$lua_best" "skipped"); vs Node.js: $(ratio "$eq_best" "$node_best" "skipped")" \
     "(out ${eq_out:-?} B per event)"

# What each one produced per event: the ratios compare events, and the events are not the same size.
counts=$(sed -n 's/.*out is \([0-9][0-9]*\) Klaviyo bodies per event (\([^)]*\)).*/\1 Klaviyo bodies (\2)/p' "$tmp/rf.err")
echo "out per event: returnflow ${rf_out:-?} B in ${counts:-? Klaviyo bodies}, as its default scripts send Loop's" \
     "full native property set with each and schedule the expiry events; bare Lua+cjson ${lua_out:-?} B in 1 smaller" \
     "body; Node.js not printed by its anchor (the same single body as the Lua anchor)"

# The whole process: `returnflow map` over MAP_N copies of the fixture, default scripts, its CPU time
# (user + system, from the shell's `times`) against the Node.js anchor's best rate. The copies are
# NDJSON, one event a line, as a backfill export gives them and as `map` streams them (a JSON array is
# read whole and validated whole before its first event, which measures the file, not the mapping);
# each line is the fixture with its newlines made spaces, so every event is the anchors' bytes.
RF=$BUILD/returnflow
if [ -x "$RF" ] && command -v lua5.4 >/dev/null 2>&1; then
  lua5.4 - "$FIXTURE" "$tmp/events.ndjson" "$MAP_N" <<'EOF'
local f = assert(io.open(arg[1], "rb")); local e = f:read("a"); f:close()
local line = e:gsub("[\r\n]", " ") .. "\n"
local o = assert(io.open(arg[2], "wb"))
for _ = 1, tonumber(arg[3]) do o:write(line) end
o:close()
EOF
  times >"$tmp/t0"                      # in this shell: a $(times) would time its own subshell
  "$RF" map -q -s scripts "$tmp/events.ndjson" >/dev/null || { echo "bench: $RF map failed" >&2; exit 1; }
  times >"$tmp/t1"
  before=$(awk 'NR == 2' "$tmp/t0") after=$(awk 'NR == 2' "$tmp/t1")
  # "0m1.23s 0m0.45s" (children's user and system time) before and after
  secs() { echo "$1" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] } print t }'; }
  cpu=$(awk -v a="$(secs "$before")" -v b="$(secs "$after")" 'BEGIN { printf "%.2f", b - a }')
  map_rate=$(awk -v n="$MAP_N" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
  echo "returnflow map, whole process: $MAP_N events (NDJSON, $(wc -c <"$FIXTURE" | tr -d ' ') B each) in $cpu s of CPU time, $map_rate events/s/core; vs Node.js:" \
       "$(ratio "$map_rate" "$node_best" "skipped")"
else
  echo "returnflow map, whole process: skipped ($RF or lua5.4 missing)"
fi
