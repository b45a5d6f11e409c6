#!/bin/sh
# `make run`: the main job on the embedded defaults: `returnflow serve` with returnflow.conf.lua, whose
# demo tenant has no Klaviyo key and so runs dry: the exact requests it would send are appended to
# data/dry/demo.ndjson. Nothing needs a Klaviyo account; Ctrl-C stops it (after draining).
#
# The banner's address, tenant and data folder are read from the config itself (a plain Lua file that
# returns a table), so they stay true when it is edited; a wildcard address is reached on loopback.
set -eu
cd "$(dirname "$0")/.."
conf=returnflow.conf.lua
fixture=fixtures/loop/return.created.json
[ -f "$fixture" ] || { echo "run: $fixture is missing" >&2; exit 1; }
build/returnflow check scripts
# listen, tenant, data: one a line.
settings=$(lua5.4 - "$conf" <<'LUA'
local ok, c = pcall(dofile, arg[1])
if not ok or type(c) ~= "table" then c = {} end
local listen = type(c.listen) == "string" and c.listen or "127.0.0.1:8787"
local host, port = listen:match("^(.*):(%d+)$")
if host == "0.0.0.0" or host == "" then host = "127.0.0.1" elseif host == "[::]" then host = "[::1]" end
local tenants = {}
for id in pairs(type(c.tenants) == "table" and c.tenants or {}) do tenants[#tenants + 1] = id end
table.sort(tenants)
print((host or "127.0.0.1") .. ":" .. (port or "8787"))
print(tenants[1] or "demo")
print(type(c.data) == "string" and c.data or "data")
LUA
)
address=$(printf '%s\n' "$settings" | sed -n 1p)
tenant=$(printf '%s\n' "$settings" | sed -n 2p)
data=$(printf '%s\n' "$settings" | sed -n 3p)
case $address in
  *:0) where="on the port serve logs below (listen ends in :0: any free port)"; url="http://ADDRESS/v1/webhooks/$tenant" ;;
  *) where="on $address"; url="http://$address/v1/webhooks/$tenant" ;;
esac
cat <<TXT

Serving tenant $tenant of $conf $where. In another terminal, post a signed Loop webhook:

  build/returnflow post $url $fixture

and see the Klaviyo requests it became (a tenant with no key runs dry):  tail -n 3 $data/dry/$tenant.ndjson

TXT
exec build/returnflow serve -c "$conf"
