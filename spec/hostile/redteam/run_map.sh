#!/usr/bin/env bash
# run_map.sh: runs hostile cases (spec/hostile/*.lua, HOSTILE.md format) through `returnflow map`
# against any build and prints one line per case. A diagnostic tool: the official runner is
# spec/lua/hostile_map.lua (the hostile_map_N_spec.lua shards). Usage:
#   RETURNFLOW_BIN=build/returnflow spec/hostile/redteam/run_map.sh [case.lua ...]   (default: every case)
# Env: RT_HANG (s, kill after, default 20), RT_MARGIN (s, watchdog margin, default 2),
#      RT_ULIMIT_KB (address space per run, default 4194304; "unlimited" for ASan), RT_TSV (file).
# Each case runs in a fresh folder: spec/hostile/benign/00-benign.lua + the case as 50-hostile.lua,
# on the attack event then the two "next" events. Columns: case, rc (or SIG/HANG), wall seconds,
# CPU seconds (user+sys), status, reason (cut), next (the next events' output vs benign alone:
# same/DIFF/-), verdict. Needs GNU time (/usr/bin/time) and lua5.4.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
benign=$root/spec/hostile/benign
bin=${RETURNFLOW_BIN:-$root/build/returnflow}
hang=${RT_HANG:-20}
margin=${RT_MARGIN:-2}
ulim=${RT_ULIMIT_KB:-4194304}
events=("$root/fixtures/loop/return.created.json" "$root/fixtures/loop/return.updated.cancelled.json"
        "$root/fixtures/loop/label.created.json")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rt-map.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
[ $# -gt 0 ] || set -- "$here"/*.lua

header() { sed -n "s/^-- $1: *//p" "$2" | head -1; }

# run DIR CAP_MS OUT ERR: sets rc and wall (seconds)
run() {
  local t0 t1
  t0=$(date +%s%N)
  ( ulimit -c 0; [ "$ulim" = unlimited ] || ulimit -v "$ulim"
    exec /usr/bin/time -f "%U %S" -o "$3.cpu" timeout -k 2 "$hang" "$bin" map --scripts "$1" --time-cap "$2" "${events[@]}" 2>"$4" ) \
    | cut -b1-1000000 >"$3"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  cpu=$(awk '/^[0-9.]+ [0-9.]+$/ { printf "%.2f", $1 + $2 }' "$3.cpu" 2>/dev/null)
}

mkdir -p "$tmp/base"
cp "$benign/00-benign.lua" "$tmp/base/"
run "$tmp/base" 500 "$tmp/base.out" "$tmp/base.err"
[ "$rc" = 0 ] || { echo "benign baseline failed (rc $rc): $(head -c 300 "$tmp/base.err")"; exit 2; }
# A second baseline for `failed` cases: the benign file beside one that only fails the attack event
# (the benign file's own writes of the attack event are dropped with it, whatever it writes).
mkdir -p "$tmp/basefail"
cp "$benign/00-benign.lua" "$tmp/basefail/"
echo 'return { ["return.created"] = function(_, out) out:fail("baseline") end }' >"$tmp/basefail/50-hostile.lua"
run "$tmp/basefail" 500 "$tmp/basefail.out" "$tmp/basefail.err"

# The checks on one run's files, in Lua (status, reason, next-events diff, paths, stderr bytes).
cat >"$tmp/check.lua" <<'LUA'
local out, base, err, expect, pat, rc, wall, bound, hang = ...
local wall_s = wall
rc, wall, bound, hang = tonumber(rc), tonumber(wall), tonumber(bound), tonumber(hang)
local function lines(f) local t = {} for l in io.lines(f) do t[#t + 1] = l end return t end
local o, b = lines(out), lines(base)
local e = io.open(err, "rb"):read(4 << 20) or ""
local status, reason = "-", ""
if o[1] then
  status = o[1]:match('^{"input":"[^"]*","trigger":[^,]*,"status":"(%a+)"') or "?"
  local r = o[1]:match('"status":"%a+","reason":"(.*)$')
  if r then
    local i, n = 1, #r
    while i <= n do
      local c = r:sub(i, i)
      if c == "\\" then i = i + 2 elseif c == '"' then break else i = i + 1 end
    end
    reason = r:sub(1, i - 1)
  end
end
local plain = reason:gsub("\\n", "\n"):gsub("\\r", "\r"):gsub('\\"', '"'):gsub("\\\\", "\\")
local next = "-"
if #o > 0 then
  next = (#o == #b) and "same" or "DIFF"
  for i = 2, #b do if o[i] ~= b[i] then next = "DIFF" end end
end
local problems = {}
local function bad(s) if not problems[s] then problems[s] = true; problems[#problems + 1] = s end end
local ok_path = { ["/api/events"] = 1, ["/api/profile-import"] = 1, ["/api/profile-subscription-bulk-create-jobs"] = 1 }
for _, l in ipairs(o) do
  for m, p in l:gmatch('"method":"(.-)","path":"(.-)"') do
    local pub = p:match("^/client/[%a-]+%?company_id=(%w+)$")
    if m ~= "POST" or not (ok_path[p] or pub) then bad("ESCAPE " .. m .. " " .. p:sub(1, 40)) end
  end
  for h in l:gmatch('"headers":(%b{})') do
    if h:find("\\[rnu]") or h:lower():find('"host"') then bad("HEADER " .. h:sub(1, 40)) end
  end
end
if e:find("AddressSanitizer") or e:find("runtime error:") then bad("SANITIZER") end
if e:find("[\0\27\r]") then bad("RAW-CTRL-STDERR") end
if #e >= 1 << 20 then bad("STDERR " .. #e .. "B") end
if #reason > 4096 then bad("REASON " .. #reason .. "B") end
local rcs
if wall >= hang - 0.5 then rcs = "HANG"; bad("HANG")
elseif rc == 124 or rc == 137 then rcs = "KILL"; bad("KILLED")
elseif rc > 128 then rcs = "SIG" .. (rc - 128); bad("SIGNAL " .. (rc - 128))
else rcs = tostring(rc) end
if wall > bound and rcs ~= "HANG" then bad("LATE>" .. bound .. "s") end
if expect == "refused" then
  if rc ~= 2 then bad("NOT-REFUSED") end
  next = "-"
  if pat ~= "" and not e:find(pat) then bad("REASON?") end
  reason = (e:match("[^\n]*") or ""):sub(1, 200)
else
  if rc == 2 then bad("REFUSED-AT-LOAD") end
  if expect == "failed" and status ~= "failed" then bad("STATUS " .. status) end
  if expect == "harmless" and status ~= "mapped" and status ~= "dropped" then bad("STATUS " .. status) end
  if expect == "failed" and pat ~= "" and status == "failed" and not plain:find(pat) then bad("REASON?") end
  if next ~= "same" and rcs:sub(1, 1) ~= "S" and rcs ~= "HANG" then bad("NEXT-" .. next) end
end
reason = reason:gsub("[%c]", "?"):sub(1, 60)
io.write(string.format("%s\31%s\31%s\31%s\31%s\31%s", rcs, wall_s, status, reason, next,
  #problems == 0 and "contained" or "NOT: " .. table.concat(problems, ",")))
LUA

printf '%-34s %-6s %6s %6s %-9s %-60s %-5s %s\n' case rc wall cpu status reason next verdict
[ -z "${RT_TSV:-}" ] || : >"$RT_TSV"
for f in "$@"; do
  name=$(basename "$f" .lua)
  expect=$(header expect "$f"); pat=$(header reason "$f"); cap=$(header cap "$f")
  cap=${cap:-0.5}
  ms=$(awk -v c="$cap" 'BEGIN { printf "%d", c * 1000 }')
  bound=$(awk -v c="$cap" -v m="$margin" 'BEGIN { printf "%.1f", 4 * c + m }')
  d="$tmp/$name"; mkdir -p "$d"
  cp "$benign/00-benign.lua" "$d/"; cp "$f" "$d/50-hostile.lua"
  run "$d" "$ms" "$tmp/$name.out" "$tmp/$name.err"
  base=$tmp/base.out; [ "$expect" != failed ] || base=$tmp/basefail.out
  res=$(lua5.4 "$tmp/check.lua" "$tmp/$name.out" "$base" "$tmp/$name.err" "$expect" "$pat" \
        "$rc" "$wall" "$bound" "$hang" 2>&1)
  IFS=$'\x1f' read -r r_rc r_wall r_status r_reason r_next r_verdict <<<"$res"
  printf '%-34s %-6s %6s %6s %-9s %-60s %-5s %s\n' "$name" "$r_rc" "$r_wall" "${cpu:--}" "$r_status" "$r_reason" "$r_next" "$r_verdict"
  [ -z "${RT_TSV:-}" ] || printf '%s\x1f%s\x1f%s\x1f%s\n' "$name" "$expect" "${cpu:--}" "$res" >>"$RT_TSV"
  rm -rf "$d" "$tmp/$name".* "$tmp/$name"
done
