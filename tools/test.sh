#!/bin/sh
# Runs every suite (C unit tests, busted specs incl. end-to-end runs of the binary) against one build,
# or against the normal build and then the ASan+UBSan build ("all"). Each suite's counts are summed;
# the last line is "N passed, N failed". Exit status is non-zero when anything failed.
#   usage: sh tools/test.sh all|plain|asan
set -u
mode=${1:-all}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
passed=0 failed=0

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

suite() { # $1 label, $2 build dir, $3 extra make args
  label=$1 dir=$2
  shift 2
  echo "== $label: building ($dir)"
  mkdir -p "$dir"
  if ! make -s BUILD="$dir" "$@" build c-tests >"$dir/make.log" 2>&1; then
    cat "$dir/make.log"; echo "$label: build failed"; add 0 1; return
  fi
  for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    echo "$out" | grep -E '^\[  (FAILED|  OK  |ERROR)' | grep -v '^\[       OK' || true
    p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    p=${p:-0} f=${f:-0}
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then echo "$out" | tail -20; f=1; fi
    echo "   $(basename "$t"): $p passed, $f failed"
    add "$p" "$f"
  done
  out=$(RETURNFLOW_BIN="$top/$dir/returnflow" lua5.4 /usr/bin/busted --lpath="$top/spec/lua/?.lua" -o TAP spec/lua 2>&1); rc=$?
  echo "$out" | grep -E '^not ok' -A12 || true
  p=$(echo "$out" | grep -c '^ok ')
  f=$(echo "$out" | grep -c '^not ok ')
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then echo "$out" | tail -20; f=1; fi
  echo "   busted specs: $p passed, $f failed"
  add "$p" "$f"
}

# The libFuzzer targets (tools/fuzz.sh), once whatever the mode: their build is ASan+UBSan already.
# They run side by side for FUZZ_SECONDS (30 here; 0 skips them), one line per target.
fuzz_suite() {
  secs=${FUZZ_SECONDS:-30}
  [ "$secs" = 0 ] && return
  echo "== fuzz: $secs s a target, side by side"
  out=$(FUZZ_SECONDS=$secs sh tools/fuzz.sh 2>&1); rc=$?
  echo "$out"
  p=$(echo "$out" | sed -n 's/^   fuzz_[a-z_]*: \([0-9]*\) passed, [0-9]* failed$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  f=$(echo "$out" | sed -n 's/^   fuzz_[a-z_]*: [0-9]* passed, \([0-9]*\) failed$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
  add "$p" "$f"
}

# luacheck over every Lua file of the project (make lint), once: it does not depend on the build.
echo "== lint"
if out=$(luacheck -q . returnflow-scm-1.rockspec 2>&1); then
  echo "   luacheck: 1 passed, 0 failed"; add 1 0
else
  echo "$out" | tail -20; echo "   luacheck: 0 passed, 1 failed"; add 0 1
fi

case $mode in
  plain|all) suite "normal build" build ;;
esac
case $mode in
  asan|all)
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    suite "ASan+UBSan build" build-asan OPT="-O1 -g" SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    ;;
esac
fuzz_suite
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
