#!/bin/sh
# Installs the Debian packages returnflow needs when run as root; otherwise prints the exact line.
# Packages: see DESIGN §6 (libseccomp-dev: the mapping workers' system-call filter, docs/security.md).
# python3-jsonschema validates request bodies against Klaviyo's OpenAPI spec in the tests (and in the
# Klaviyo stand-in; python3-fastjsonschema passes the valid ones ~20x faster, jsonschema says what is
# wrong with the rest); lua-sql-sqlite3 (LuaSQL) reads the store in-process from
# the specs; git clones the repository in spec/repo/clone_spec.lua; curl checks keep-alive in the
# stand-in's spec. nodejs runs the Node.js anchor in `make bench`, wrk posts the webhooks of
# bench/serve.sh, and GNU time measures bench/backfill.sh's peak RSS and a hostile map run's CPU; chromium and the fonts render the
# email previews (`make previews` and spec/lua/previews_spec.lua: a missing font fails it, never skips it);
# ccache makes the suite's second and third builds of the same sources (a clone, luarocks) a look-up. lua-check is luacheck:
# `make lint`, and the suite checks that the project and a starter from `returnflow init` lint clean.
# prometheus ships promtool (the only Debian package that does; ~96 MB with its web assets, never
# started here): spec/lua/metrics_spec.lua runs `promtool check metrics` on a live serve's /metrics.
# chromium-driver and python3-selenium drive the console's browser specs (spec/browser/).
# systemd ships systemd-analyze: spec/lua/systemd_spec.lua runs `systemd-analyze verify` on dist/'s units
# (a missing one fails it; nothing is started).
# clang and libclang-rt-dev (its sanitizer and libFuzzer runtimes) build the fuzz targets (tools/fuzz.sh).
# libpq-dev is the PostgreSQL backend's client (store.url); postgresql-15 gives the specs a private
# cluster of their own (spec/lua/pg.lua: initdb into a temporary folder, nothing system-wide is started)
# and lua-sql-postgres lets them read it as they read SQLite.
set -u
PKGS="gcc make pkg-config lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev lua-busted luarocks libcmocka-dev
      libuv1-dev libhttp-parser-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev libseccomp-dev curl
      sqlite3 python3 python3-jsonschema python3-fastjsonschema lua-check lua-sql-sqlite3 libpq-dev postgresql-15 lua-sql-postgres git clang libclang-rt-dev ccache time
      chromium fonts-noto-cjk fonts-dejavu-core prometheus chromium-driver python3-selenium systemd"
# The Node.js anchor needs some node; Debian's only when there is none on PATH.
[ "${1:-}" = "bench" ] && ! command -v node >/dev/null 2>&1 && PKGS="$PKGS nodejs"
[ "${1:-}" = "bench" ] && PKGS="$PKGS wrk"
# One dpkg-query for every package (one a package cost ~0.7 s of CPU a `make` target); a package it
# does not know is not in its output, and so missing too.
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null | awk '/ install ok installed$/ { printf "%s ", $1 }')"
missing=""
for p in $PKGS; do
  case "$installed" in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
    echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
else
  echo "deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
