#!/bin/sh
# Builds the libFuzzer targets (spec/fuzz/fuzz_*.c) with clang, ASan and UBSan in build-fuzz, then runs
# them side by side, a core each, for FUZZ_SECONDS (default 60). Each starts from its committed seeds
# (spec/fuzz/seeds/NAME, and fixtures/loop for json) plus what earlier runs found (build-fuzz/corpus/NAME,
# never committed). A crash, leak, hang, UB or broken invariant fails the target and is saved as
# build-fuzz/crashes/fuzz_NAME-*; replay one with `build-fuzz/fuzz_NAME FILE`.
# Then replays the JSON corpus through Python's json too (spec/fuzz/json_vs_python.py, with returnflow's
# decoder from build-fuzz/lib). Prints per target a line in tools/test.sh's format
# ("   fuzz_json: 1 passed, 0 failed") and the figures; FUZZ_COVERAGE=1 adds each file's line coverage.
#   usage: FUZZ_SECONDS=30 sh tools/fuzz.sh
#          sh tools/fuzz.sh build      (builds the targets only: `make test` builds them in its pool)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${FUZZ_SECONDS:-60}
dir=build-fuzz
targets=$(ls spec/fuzz/fuzz_*.c | sed 's|spec/fuzz/\(.*\)\.c|\1|')
mkdir -p "$dir/crashes"

fail_all() { for t in $targets fuzz_json_python; do echo "   $t: 0 passed, 1 failed"; done; exit 1; }

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang is missing: apt-get install -y clang libclang-rt-dev"; fail_all
fi
if ! make -s BUILD="$dir" CC=clang OPT="-O1 -g" \
     SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
     fuzz-targets "$dir/lib/returnflow/native.so" >"$dir/make.log" 2>&1; then
  tail -30 "$dir/make.log"; echo "fuzz: build failed"; fail_all
fi
[ "${1:-}" = build ] && exit 0

for t in $targets; do
  name=${t#fuzz_}
  seeds="spec/fuzz/seeds/$name"
  [ "$name" = json ] && seeds="$seeds fixtures/loop"
  # ingest logs each refusal to stderr: closed (-close_fd_mask=2); libFuzzer and the sanitizers still report.
  quiet=""
  [ "$name" = ingest ] && quiet="-close_fd_mask=2"
  mkdir -p "$dir/corpus/$name"
  # -timeout=5: an input takes milliseconds; ingest's shortest client timer is 10 s, so a connection
  # left waiting on one after the client closed is reported as a hang, not raced.
  ( UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$dir/$t" -max_total_time="$secs" -timeout=5 \
      -rss_limit_mb=2048 -print_final_stats=1 $quiet -artifact_prefix="$dir/crashes/$t-" \
      "$dir/corpus/$name" $seeds >"$dir/$t.log" 2>&1
    echo $? >"$dir/$t.rc" ) &
done
wait

status=0
for t in $targets; do
  log="$dir/$t.log"
  rc=$(cat "$dir/$t.rc" 2>/dev/null || echo 1)
  if [ "$rc" = 0 ]; then
    echo "   $t: 1 passed, 0 failed"
  else
    grep -E 'invariant broken|ERROR:|SUMMARY|Test unit written' "$log" | head -8
    echo "   $t: 0 passed, 1 failed"
    status=1
  fi
  # The last status line holds the coverage: "#N DONE cov: C ft: F corp: K/SIZE ..."
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  echo "      ${secs} s: ${runs:-?} runs, ${rate:-?} execs/s, cov ${cov:-?} edges, ft ${ft:-?} features, corpus ${corp:-?} inputs"
done
# The JSON corpus against Python's json, the second reference (spec/fuzz/json_vs_python.py).
python3 spec/fuzz/json_vs_python.py "$dir/lib" spec/fuzz/seeds/json fixtures/loop "$dir/corpus/json" || status=1

# FUZZ_COVERAGE=1: the line coverage of the fuzzed files, replaying each corpus through a build
# instrumented for llvm-cov (build-fuzz-cov).
if [ "${FUZZ_COVERAGE:-0}" = 1 ]; then
  cov=build-fuzz-cov
  mkdir -p $cov
  make -s BUILD=$cov CC=clang OPT="-O1 -g" SAN="-fsanitize=fuzzer-no-link -fprofile-instr-generate -fcoverage-mapping" \
    fuzz-targets >"$cov/make.log" 2>&1 || { tail -20 "$cov/make.log"; exit 1; }
  for t in $targets; do
    name=${t#fuzz_}
    seeds="spec/fuzz/seeds/$name"
    [ "$name" = json ] && seeds="$seeds fixtures/loop"
    rm -f "$cov/$t.profraw"
    LLVM_PROFILE_FILE="$cov/$t.profraw" "$cov/$t" -runs=0 -close_fd_mask=3 "$dir/corpus/$name" $seeds >/dev/null 2>&1
    llvm-profdata merge -o "$cov/$t.profdata" "$cov/$t.profraw"
    files="core/json/json.c core/json/json_event.c core/json/json_encode.c"
    [ "$name" = ingest ] && files="core/service/ingest.c"
    echo "      $t, lines covered by its corpus:"
    llvm-cov report "$cov/$t" -instr-profile="$cov/$t.profdata" $files |
      awk 'NR > 2 && $1 != "TOTAL" && NF > 9 { n = split($1, p, "/"); printf "        %-16s %s of %s lines\n", p[n], $10, $8 }'
  done
fi
exit $status
