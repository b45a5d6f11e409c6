#!/bin/sh
# `make run`: the main job on the embedded defaults, no Klaviyo account needed. Until `serve` exists
# that is `returnflow map` over Loop's sample webhooks: it prints the exact requests (key redacted)
# and sends nothing.
set -eu
cd "$(dirname "$0")/.."
F=${SHARED:-../shared}/fixtures/loop
bin=build/returnflow
$bin check scripts
echo
echo "== one event, readable: $bin map --pretty $F/return.created.json"
$bin map --pretty "$F/return.created.json"
echo
echo "== every sample webhook, one JSON document per event (written to build/map-output.ndjson)"
$bin map "$F"/*.json > build/map-output.ndjson || true
sed -n 's/^{"input":"\([^"]*\)","trigger":\([^,]*\),"status":"\([a-z]*\)".*/  \3  \1/p' build/map-output.ndjson
echo "requests per metric:"
grep -o '"metric":{"data":{"attributes":{"name":"[^"]*"' build/map-output.ndjson | sed 's/.*"name":"\([^"]*\)"/\1/' | sort | uniq -c
