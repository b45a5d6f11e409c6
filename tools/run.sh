#!/bin/sh
# `make run`: the main job on the embedded defaults: `returnflow serve` with returnflow.conf.lua, whose
# demo tenant has no Klaviyo key and so runs dry: the exact requests it would send are appended to
# data/dry/demo.ndjson. Nothing needs a Klaviyo account; Ctrl-C stops it (after draining).
set -eu
cd "$(dirname "$0")/.."
F=fixtures/loop
build/returnflow check scripts
cat <<TXT

Serving the demo tenant (dry) on 127.0.0.1:8787. In another terminal, post a signed Loop webhook:

  build/returnflow post http://127.0.0.1:8787/v1/webhooks/demo $F/return.created.json

and see the Klaviyo requests it became:  tail -n 3 data/dry/demo.ndjson

TXT
exec build/returnflow serve -c returnflow.conf.lua
