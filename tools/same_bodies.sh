#!/bin/sh
# Checks that two returnflow binaries map every event the same, byte for byte: a change meant to make
# the transform faster (issue 16) must not move one byte of what is sent. Maps every fixture of
# fixtures/loop with the default scripts (private key, public key, backfill), with the anchors'
# mapping (bench/anchor-mapping), and with each template of templates/ (its handler file beside the
# default scripts, and alone), and compares the two outputs of each.
#   usage: sh tools/same_bodies.sh BEFORE_BIN AFTER_BIN      (run from the repository root)
# Prints one line a difference and "N runs, N differ"; exits 1 when any differs. Writes only under a
# folder of mktemp, removed at the end.
set -u
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  echo "usage: sh tools/same_bodies.sh BEFORE_BIN AFTER_BIN" >&2
  exit 2
fi
before=$1 after=$2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
set -- fixtures/loop/*.json                 # the fixtures, as the positional parameters
runs=0 differ=0

# both NAME SCRIPTS FIXTURE...: maps the fixtures with each binary, that scripts folder and $opts
# shellcheck disable=SC2086  # $opts: split into words on purpose (no option holds a space)
both() {
  name=$1 dir=$2; shift 2
  "$before" map -q -s "$dir" $opts "$@" >"$tmp/before" 2>&1
  "$after" map -q -s "$dir" $opts "$@" >"$tmp/after" 2>&1
  runs=$((runs + 1))
  cmp -s "$tmp/before" "$tmp/after" || { differ=$((differ + 1)); echo "differs: $name ($dir $opts)"; }
}

opts=""
both "default scripts" scripts "$@"
opts="--key-kind public --site-id AbC123"
both "default scripts, public key" scripts "$@"
opts="--backfill"
both "default scripts, backfill" scripts "$@"
opts=""
both "anchors' mapping" bench/anchor-mapping "$@"
for t in templates/*/; do
  rm -rf "$tmp/with" "$tmp/alone"
  cp -R scripts "$tmp/with"
  mkdir "$tmp/alone"
  handler=""
  for f in "$t"[0-9]*-*.lua; do
    [ -f "$f" ] || continue
    handler=$f
    cp "$f" "$tmp/with/"
    cp "$f" "$tmp/alone/"
  done
  both "$(basename "$t") with the default scripts" "$tmp/with" "$@"
  if [ -n "$handler" ]; then both "$(basename "$t") alone" "$tmp/alone" "$@"; fi
done
echo "$runs runs, $differ differ"
[ "$differ" -eq 0 ]
