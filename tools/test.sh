#!/bin/sh
# Runs the suites and sums their counts; the last line is "N passed, N failed" and the exit status is
# non-zero when anything failed. Every failure prints its cause (the spec's message, the C test's
# output, the build log).
#   usage: sh tools/test.sh all|stress|plain|asan|check
#   stress `all` with the stress specs at full size (RETURNFLOW_STRESS=1: 10,000-event backfills, 20,000
#          webhooks through five kill -9; spec/lua/helpers.lua's M.size)          (`make stress`)
#   all    lint, both builds, then one pool for both builds' C tests and spec files and the fuzz
#          targets' build, the fuzz targets, and the EXTRA_SUITES (once)  (`make test`; POOLED=0: one
#          build's suite after the other, as before)
#   plain  lint, the normal build's suite, the EXTRA_SUITES
#   asan   the ASan+UBSan build's suite alone                         (`make asan`)
#   check  the normal build's C tests and the CHECK_SPECS alone, in about a minute (`make check`)
#
# Why it is quick: the two builds are made at once, each with make -j; then every C test binary and
# spec file of both builds (and the fuzz targets' build) are jobs of one pool of POOL processes, the
# slowest first (most of a spec's time is spent waiting on a server, a rate limit or a deadline, not
# on the CPU: a pool wider than the cores fills those waits). The stress specs, which load the machine
# on purpose and time what the service does under it, run first in HEAVY_LANES of the POOL workers, one
# at a time each (HEAVY_ORDER); those workers then take jobs from the pool's queue like the others. The
# fuzz targets start once the queue is empty, beside the pool's last jobs. Nothing the builds' jobs
# use is shared: every server listens on a free port, every folder is made under TMPDIR by the process
# that uses it, and returnflow.native is loaded from the build under test.
#
# To add a suite: a spec file under spec/lua (any *_spec.lua runs in both builds' suites); a spec file
# in ONCE_SPECS (run once, against the normal build, e.g. spec/repo/clone_spec.lua, which clones the
# repository and runs `make check` there); or a line in EXTRA_SUITES: "label|command", a command run
# from the repository root once per `all`/`plain` whose output's last line is "N passed, N failed".
set -u
mode=${1:-all}
if [ "$mode" = stress ]; then mode=all; export RETURNFLOW_STRESS=1; fi
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

NPROC=$(nproc 2>/dev/null || echo 2)
POOLED=${POOLED:-1}
POOL=${POOL:-$((NPROC * 3))}            # jobs at once in `all` (both builds' specs, C tests, fuzz)
HEAVY_LANES=${HEAVY_LANES:-3}           # stress specs at once in `all`
JOBS=${JOBS:-$((NPROC + 1))}            # busted processes at once, per suite (plain, asan, POOLED=0)
MAKE_JOBS=${MAKE_JOBS:-$NPROC}

# The spec files the ASan+UBSan build's suite leaves to the normal build's: they run no C of the binary
# that another spec in that suite does not run too, so under the sanitizers they would cost minutes and
# find nothing new. conformance compares native.so (never sanitized) with map's output, line by line, for
# every template (the mapper's C under many scripts is the hostile, default_scripts and mapping_api
# specs' work there); templates, previews and starter are the Lua tooling and Chromium (their C paths,
# the HTTP client and init, are cli's and post's); testing and render load native.so alone, in
# lua5.4; standin is the Python stand-in; architecture and revision read files. The PostgreSQL variants
# of the stress specs (volume_pg, durability_pg, reload_pg, deliver_pg: each its SQLite spec again on the
# other backend) run the same C as their SQLite specs, which this suite runs, plus the backend's, which
# it runs in store_pg (every store operation's C test on PostgreSQL), serve_pg, trace_pg, console_pg,
# lease_pg, pg_restart and cluster; at volume under ASan they timed PostgreSQL (about 110 s of CPU).
ASAN_SKIP=${ASAN_SKIP:-"conformance templates previews starter testing render standin architecture revision
                        volume_pg durability_pg reload_pg deliver_pg"}
# The fast specs of `make check`: no service kept running for seconds, no volume (each under 10 s).
CHECK_SPECS=${CHECK_SPECS:-"bad_input conformance default_scripts mapping_api post render starter
                            testing leftovers"}
# The slowest first, so that the pool is not left waiting on one long file at the end.
SLOW_FIRST="hostile_serve_1 hostile_serve_2 hostile_serve_3 hostile_serve_4 volume volume_pg cluster hostile_map_1
            hostile_map_2 reload reload_pg durability durability_pg pg_restart templates conformance cli standin
            deliver deliver_pg serve serve_pg"
# The heavy specs of `all`, both builds', the slowest first (wall seconds on 2 cores), dealt to the
# HEAVY_LANES lanes in a snake (0 1 2 2 1 0 ...), so the lanes end near together; the two cluster
# specs (three nodes and PostgreSQL each) are dealt apart.
HEAVY_ORDER=${HEAVY_ORDER:-"build:volume_pg build-asan:volume build:reload_pg build-asan:reload build:volume build:reload
                            build-asan:durability build:durability_pg build-asan:cluster build:durability
                            build:cluster"}

# The stress specs load the CPU on purpose and time what the service does under it: in `all` they are
# HEAVY_ORDER's lanes; in plain, asan and POOLED=0 one at a time per suite, so two of them never share
# a suite's half of the machine, the other specs beside them. The names of HEAVY_ORDER, once each.
HEAVY=${HEAVY:-$(for e in $HEAVY_ORDER; do echo "${e#*:}"; done | awk '!seen[$0]++' | tr '\n' ' ')}
# Spec files run once per `all`/`plain`, against the normal build (first: they are the slowest).
ONCE_SPECS=${ONCE_SPECS:-"spec/repo/clone_spec.lua spec/repo/rockspec_spec.lua"}
# Suites run once, not per build: "label|command" a line.
EXTRA_SUITES=${EXTRA_SUITES:-""}

ASAN_ARGS='OPT=-O1 -g'
ASAN_SAN='SAN=-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer'

# run_spec FILE OUT: one spec file in its own busted process, its TAP output, exit code and seconds
# into OUT/NAME.{tap,rc,s}.
run_spec() {
  o=$2/$(basename "$1" .lua) s=$(date +%s)
  # perf counts the CPU time of the spec and of every process it started, detached ones too.
  if [ -n "$PERF" ]; then
    perf stat -x, -e task-clock -o "$o.time" -- \
      lua5.4 /usr/bin/busted --lpath="$top/spec/lua/?.lua" -o TAP "$1" >"$o.tap" 2>&1
  else
    lua5.4 /usr/bin/busted --lpath="$top/spec/lua/?.lua" -o TAP "$1" >"$o.tap" 2>&1
  fi
  echo $? >"$o.rc"; echo $(( $(date +%s) - s )) >"$o.s"
  [ -n "$PERF" ] && awk -F, '$3 == "task-clock" { printf "%d\n", $1 / 1000 }' "$o.time" >"$o.cpu"
}
# The CPU seconds a spec file cost, shown beside its wall time when perf can count them.
PERF=$(perf stat -e task-clock -o /dev/null -- true >/dev/null 2>&1 && echo 1)

if [ "$mode" = run-spec ]; then run_spec "$2" "$3"; exit 0; fi    # internal: the pool of `specs`

# asan_env: what the ASan+UBSan build's jobs run with.
asan_env() {
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # A sanitized build runs several times slower: the hostile runners' wall-clock margin grows with it,
  # and the red team's cases run under serve in the normal build only (spec/lua/hostile_serve.lua).
  export HOSTILE_MARGIN=${HOSTILE_MARGIN:-30} HOSTILE_REDTEAM=0 HOSTILE_CAP_SCALE=${HOSTILE_CAP_SCALE:-4}
}


# counts P F: one suite's passed and failed, summed at the end.
counts() { echo "$1 $2" >>"$results/counts"; }

# spec_files ONCE: the spec files of this mode, slowest first; with ONCE=1 the ONCE_SPECS too.
spec_files() {
  if [ "$mode" = check ]; then
    for s in $CHECK_SPECS; do echo "spec/lua/${s}_spec.lua"; done
    return
  fi
  [ "$1" = 1 ] && for f in $ONCE_SPECS; do echo "$f"; done
  slow=$(echo $SLOW_FIRST) skip=$(echo $SKIP_SPECS)       # one line each, one space between names
  {
    for s in $slow; do [ -f "spec/lua/${s}_spec.lua" ] && echo "spec/lua/${s}_spec.lua"; done
    for f in spec/lua/*_spec.lua; do
      s=${f##*/} s=${s%_spec.lua}
      case " $slow " in *" $s "*) ;; *) echo "$f" ;; esac
    done
  } | while read -r f; do
    s=${f##*/} s=${s%_spec.lua}
    case " $skip " in *" $s "*) ;; *) echo "$f" ;; esac
  done
}
SKIP_SPECS=""

# build LABEL DIR [make args]: builds DIR; prints the log and counts a failure when it fails.
build() {
  label=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  if make -s -j"$MAKE_JOBS" BUILD="$dir" "$@" build c-tests >"$dir/make.log" 2>&1; then return 0; fi
  cat "$dir/make.log"; echo "$label: build failed"; counts 0 1
  return 1
}

# c_tests DIR: the cmocka binaries of a build, their failures with their output.
c_tests() {
  for t in "$1"/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    p=${p:-0} f=${f:-0}
    if [ "$f" != 0 ]; then echo "$out" | grep -E '^\[  (FAILED|ERROR) *\]|error|Failure' | head -40; fi
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then echo "$out" | tail -20; f=1; fi
    echo "   $(basename "$t"): $p passed, $f failed"
    counts "$p" "$f"
  done
}

# specs LABEL DIR ONCE: every spec file against DIR's binary, JOBS at once; each file's failures with
# their messages, then one line per file.
specs() {
  label=$1 dir=$2 once=$3
  out="$results/$(basename "$dir")"
  mkdir -p "$out"
  export RETURNFLOW_BIN="$top/$dir/returnflow"
  # The heavy specs one after the other, beside a pool of JOBS - 1 busted processes for the others.
  for f in $(spec_files "$once"); do
    case " $HEAVY " in *" $(basename "$f" _spec.lua) "*) run_spec "$f" "$out" ;; esac
  done &
  for f in $(spec_files "$once"); do
    case " $HEAVY " in *" $(basename "$f" _spec.lua) "*) ;; *) echo "$f" ;; esac
  done | xargs -P "$((JOBS > 1 ? JOBS - 1 : 1))" -I{} sh "$top/tools/test.sh" run-spec {} "$out"
  wait
  specs_report "$dir" "$once"
}

# specs_report DIR ONCE: each spec file's failures with their messages, then one line per file.
specs_report() {
  out="$results/$(basename "$1")"
  for f in $(spec_files "$2"); do
    n=${f##*/} o="$out/${n%.lua}"
    # A pending (skipped) test is not a pass: it is counted as a failure, with its reason shown.
    p=$(grep '^ok ' "$o.tap" | grep -vc '# SKIP') f_=$(grep -c '^not ok \|^ok .*# SKIP' "$o.tap")
    grep '^ok .*# SKIP' "$o.tap" | sed 's/^/skipped, counted as failed: /' || true
    rc=$(cat "$o.rc" 2>/dev/null || echo 1)
    # A failure's first 12 lines, then the lines of its message that name a failure (a nested suite's
    # output, as clone_spec's, would otherwise be cut before the part that failed).
    awk '/^not ok/ { n = 12; inside = 1; print; next } /^(ok |1\.\.)/ { inside = 0 }
         inside && (n-- > 0 || /not ok|[1-9][0-9]* failed|[Ee]rror|Failure|Exception|Traceback/)' "$o.tap"
    if [ "$rc" -ne 0 ] && [ "$f_" = 0 ]; then tail -20 "$o.tap"; f_=1; fi
    echo "   $n: $p passed, $f_ failed ($(cat "$o.s" 2>/dev/null || echo ?) s, $(cat "$o.cpu" 2>/dev/null || echo ?) s CPU)"
    counts "$p" "$f_"
  done
}

# suite LABEL DIR ONCE [make args]: builds DIR, runs its C tests and specs (ONCE=1: the ONCE_SPECS too).
suite() {
  label=$1 dir=$2 once=$3
  shift 3
  echo "== $label ($dir)"
  build "$label" "$dir" "$@" || return 0
  c_tests "$dir"
  specs "$label" "$dir" "$once"
}

extra_suites() {
  echo "$EXTRA_SUITES" | while IFS='|' read -r label cmd; do
    [ -n "$label" ] || continue
    echo "== $label: $cmd"
    out=$(sh -c "$cmd" 2>&1); rc=$?
    last=$(echo "$out" | tail -1)
    p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then p=0 f=1; fi
    if [ "$f" != 0 ] || [ $rc -ne 0 ]; then echo "$out" | tail -40; [ "$f" != 0 ] || f=1; fi
    echo "   $label: $p passed, $f failed"
    counts "$p" "$f"
  done
}

lint() {
  echo "== lint"
  if out=$(luacheck -q . returnflow-scm-1.rockspec 2>&1); then
    echo "   luacheck: 1 passed, 0 failed"; counts 1 0
  else
    echo "$out" | tail -20; echo "   luacheck: 0 passed, 1 failed"; counts 0 1
  fi
}

asan() {
  asan_env
  SKIP_SPECS=$ASAN_SKIP
  suite "ASan+UBSan build" build-asan 0 "$ASAN_ARGS" "$ASAN_SAN"
}

# The libFuzzer targets (tools/fuzz.sh), once whatever the build: their build is ASan+UBSan already.
# They run side by side for FUZZ_SECONDS (20 here; 0 skips them), one line per target.
fuzz_suite() {
  secs=${FUZZ_SECONDS:-20}
  [ "$secs" = 0 ] && return
  echo "== fuzz: $secs s a target, side by side"
  out=$(FUZZ_SECONDS=$secs sh tools/fuzz.sh 2>&1); rc=$?
  echo "$out"
  p=$(echo "$out" | sed -n 's/^   fuzz_[a-z_]*: \([0-9]*\) passed, [0-9]* failed$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  f=$(echo "$out" | sed -n 's/^   fuzz_[a-z_]*: [0-9]* passed, \([0-9]*\) failed$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
  counts "$p" "$f"
}

# fuzz_when_built: fuzz_suite once the pool's fuzz-build job is done (it is near the queue's head; a
# build that failed is fuzz_suite's to report) and every worker has left its lane of stress specs
# (they time the service under a load of their own making: the fuzz targets must not add to it).
# Then at most POOL - 1 jobs still run, the last and shortest of the queue, so an input still takes
# milliseconds, far under libFuzzer's 5 s timeout.
fuzz_when_built() {
  [ "${FUZZ_SECONDS:-20}" = 0 ] && return
  n=0
  until [ -f "$results/fuzz-build.done" ] && [ "$(ls "$results" | grep -c '^lane\..*\.done$')" -ge "$POOL" ] ||
        [ $n -ge 3000 ]; do
    sleep 0.2; n=$((n + 1))
  done
  fuzz_suite
}

# heavy_lane K: the spec files lane K runs, one after the other ("DIR FILE" a line).
heavy_lane() {
  i=0
  for entry in $HEAVY_ORDER; do
    round=$((i / HEAVY_LANES)) pos=$((i % HEAVY_LANES))
    [ $((round % 2)) = 1 ] && pos=$((HEAVY_LANES - 1 - pos))
    d=${entry%%:*} name=${entry#*:}
    skip=""; [ "$d" = build-asan ] && skip=$ASAN_SKIP
    case " $(echo $skip) " in *" $name "*) ;; *)
      [ "$pos" = "$1" ] && [ -f "spec/lua/${name}_spec.lua" ] && echo "$d spec/lua/${name}_spec.lua" ;;
    esac
    i=$((i + 1))
  done
}

# pool_jobs: the other jobs of `all`, one a line, the slowest first: the ONCE_SPECS, the fuzz targets'
# build, the C tests, then the spec files neither heavy nor once, the two builds' alternately.
pool_jobs() {
  SKIP_SPECS="" normal=$(spec_files 1)
  SKIP_SPECS=$ASAN_SKIP sanitized=$(spec_files 0)
  for f in $ONCE_SPECS; do echo "spec build $f"; done
  [ "${FUZZ_SECONDS:-20}" = 0 ] || echo "fuzz-build"
  echo "ctests build"; echo "ctests build-asan"
  others build "$normal" >"$results/jobs.build"
  others build-asan "$sanitized" >"$results/jobs.build-asan"
  paste -d '\n' "$results/jobs.build" "$results/jobs.build-asan" | grep -v '^$'
}

# others DIR LIST: a job line for each spec file of LIST that no lane runs and is not once, in its order.
others() {
  for f in $2; do
    case " $(echo $ONCE_SPECS) " in *" $f "*) continue ;; esac
    s=${f##*/} s=${s%_spec.lua}
    case " $(echo $HEAVY_ORDER) " in *" $1:$s "*) continue ;; esac   # a lane's
    echo "spec $1 $f"
  done
}

# next_job: the queue's next line, once to one worker (flock: util-linux, in every Debian); empty at its end.
next_job() {
  flock "$results/queue.lock" sh -c 'n=$(cat "$1.next"); echo $((n + 1)) >"$1.next"; sed -n "${n}p" "$1"' _ "$results/queue"
}

# all_pooled: `make test`: lint and both builds at once, then the pool; the logs in order at the end.
all_pooled() {
  echo "== lint and both builds at once (make -j$MAKE_JOBS each), then $POOL jobs at once: both builds' C tests and spec files and the fuzz targets, the stress specs $HEAVY_LANES at a time"
  t0=$(date +%s)
  lint >"$results/lint.log" 2>&1 &
  build "normal build" build >"$results/build.log" 2>&1 &
  build "ASan+UBSan build" build-asan "$ASAN_ARGS" "$ASAN_SAN" >"$results/build-asan.log" 2>&1 &
  wait
  t1=$(date +%s)
  cat "$results/lint.log" "$results/build.log" "$results/build-asan.log"
  if grep -q 'build failed$' "$results/build.log" "$results/build-asan.log"; then return; fi
  mkdir -p "$results/build" "$results/build-asan"
  # POOL workers: the first HEAVY_LANES run their lane of heavy specs first; every worker then takes
  # the other jobs from one queue, so a lane that ends early works on the rest (with the lanes apart
  # from the queue, the lanes ended minutes before the queue's three workers did).
  (pool_jobs) >"$results/queue"           # a subshell: pool_jobs sets SKIP_SPECS, which the report reads
  echo 1 >"$results/queue.next"
  k=0
  while [ $k -lt "$POOL" ]; do
    {
      if [ $k -lt "$HEAVY_LANES" ]; then
        heavy_lane $k | while read -r d f; do sh "$top/tools/test.sh" run-job "$results" spec "$d" "$f" </dev/null; done
      fi
      touch "$results/lane.$k.done"
      # shellcheck disable=SC2086  # a job is words: KIND [DIR [FILE]]
      while job=$(next_job) && [ -n "$job" ]; do sh "$top/tools/test.sh" run-job "$results" $job; done
      # The first worker to find the queue empty runs the fuzz targets (mkdir: one claims it), beside
      # the last jobs still running: the pool's tail leaves cores idle, which they fill.
      if mkdir "$results/fuzz.claimed" 2>/dev/null; then fuzz_when_built >"$results/fuzz.log" 2>&1; fi
    } &
    k=$((k + 1))
  done
  wait
  # Every spec job ran (its exit code is there), or it is a failure: a job lost from the queue or a
  # lane must not shrink the counts unseen.
  k=0
  { cat "$results/queue"; while [ $k -lt "$HEAVY_LANES" ]; do heavy_lane $k | sed 's/^/spec /'; k=$((k + 1)); done; } |
    while read -r kind d f; do
      [ "$kind" = spec ] || continue
      n=${f##*/}
      [ -f "$results/${d##*/}/${n%.lua}.rc" ] && continue
      echo "   $d $f: never ran, counted as failed" >>"$results/lost.log"
      counts 0 1
    done
  t2=$(date +%s)
  echo "== normal build (build)"
  cat "$results/build/ctests.log"
  specs_report build 1
  extra_suites
  echo "== ASan+UBSan build (build-asan)"
  cat "$results/build-asan/ctests.log"
  SKIP_SPECS=$ASAN_SKIP specs_report build-asan 0
  cat "$results/fuzz.log" 2>/dev/null
  cat "$results/lost.log" 2>/dev/null
  echo "== times: lint and builds $((t1 - t0)) s, the pool $((t2 - t1)) s"
}

# internal, a job of `all`: "spec DIR FILE", "ctests DIR" or "fuzz-build"; results into RESULTS/(DIR's name)/.
if [ "$mode" = run-job ]; then
  results=$2 kind=$3 dir=${4:-} file=${5:-}
  [ "$dir" = build-asan ] && asan_env
  out="$results/$(basename "${dir:-fuzz}")"
  case $kind in
    spec) export RETURNFLOW_BIN="$top/$dir/returnflow"; run_spec "$file" "$out" ;;
    ctests) c_tests "$dir" >"$out/ctests.log" 2>&1 ;;
    fuzz-build) sh "$top/tools/fuzz.sh" build >"$results/fuzz-build.log" 2>&1     # its failure: fuzz_suite's
                touch "$results/fuzz-build.done" ;;
  esac
  exit 0
fi

# The run's folder: its results and, when TMPDIR is not set, the TMPDIR of everything it starts (the
# specs' data folders, PostgreSQL clusters, clone_spec's clone), removed whole at the end. Then it is
# on a tmpfs when the machine has one with room (/dev/shm, 4 GiB free at least), else in /tmp.
# Why a tmpfs: the specs' stores commit and fsync all the time, and on a disk each fsync is kernel time
# and a wait that checks nothing a spec asserts (a process killed -9 keeps what it wrote either way; no
# spec cuts the power, and the disk-full cases use the store's fault VFS). volume_spec alone, normal
# build: 34.8 s and 26.8 CPU-s on /tmp (ext4), 22.7 s and 18.8 CPU-s on /dev/shm.
# A TMPDIR that is set is kept as it is (a nested run's, as clone_spec's: one more folder level would
# take PostgreSQL's unix socket paths past their 107 bytes).
if [ -n "${TMPDIR:-}" ]; then
  scratch=$(mktemp -d "$TMPDIR/returnflow-test.XXXXXX") || exit 2
else
  root=/tmp
  if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
     [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge 4194304 ] 2>/dev/null; then
    root=/dev/shm
  fi
  scratch=$(mktemp -d "$root/rf-test.XXXXXX") && chmod 755 "$scratch" || exit 2   # PostgreSQL's user too
  export TMPDIR="$scratch"
fi
trap 'rm -rf "$scratch"' EXIT
results=$scratch/results
mkdir "$results" || exit 2
trap 'exit 130' INT TERM

case $mode in
  check)
    suite "normal build (make check: C tests and $(echo $CHECK_SPECS | wc -w) fast spec files)" build 0
    ;;
  plain)
    lint
    suite "normal build" build 1
    extra_suites
    ;;
  asan)
    asan
    ;;
  all)
    if [ "$POOLED" = 1 ]; then
      all_pooled
    elif [ "${SIDE_BY_SIDE:-0}" = 1 ]; then
      # Lint, the normal build's suite (then the extra suites) and the ASan build's suite side by side,
      # each into its own log, printed in order once all are done.
      echo "== lint, build and build-asan side by side (make -j$MAKE_JOBS; per suite, the stress specs in turn beside $((JOBS - 1)) others)"
      lint >"$results/lint.log" 2>&1 &
      (suite "normal build" build 1; extra_suites) >"$results/plain.log" 2>&1 &
      asan >"$results/asan.log" 2>&1 &
      # The fuzz targets' build and run overlap the suites' waits on servers.
      fuzz_suite >"$results/fuzz.log" 2>&1 &
      wait
      cat "$results/lint.log" "$results/plain.log" "$results/asan.log" "$results/fuzz.log"
    else
      # The default: one build after the other, so the specs that time the service under load
      # (durability, volume, reload) are not timing a machine the other build's suite keeps busy too.
      echo "== lint, then build, then build-asan (make -j$MAKE_JOBS; per suite, the stress specs in turn beside $((JOBS - 1)) others)"
      lint
      suite "normal build" build 1
      extra_suites
      asan
      fuzz_suite
    fi
    ;;
  *)
    echo "usage: sh tools/test.sh all|stress|plain|asan|check" >&2; exit 2
    ;;
esac

passed=0 failed=0
while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done <"$results/counts"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
