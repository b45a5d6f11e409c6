# Sourced by the service benchmarks (bench/serve.sh, bench/backfill.sh): a scratch folder under $BUILD that
# goes at exit with every process the script started (their pids in $pids), and small arithmetic helpers.
#   usage: . bench/lib.sh; bench_setup NAME   (sets tmp, root, pids)

bench_setup() {
  mkdir -p "$BUILD" || exit 2
  tmp=$(mktemp -d "$BUILD/bench-$1.XXXXXX") || exit 2
  tmp=$(cd "$tmp" && pwd)
  root=$(pwd)
  pids=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}

ticks=$(getconf CLK_TCK)
now() { date +%s.%N; }
# awk arithmetic on its arguments: calc 'a / b' 1 2 (a, b, c, d are the arguments).
calc() { e=$1; shift; awk -v a="${1:-0}" -v b="${2:-0}" -v c="${3:-0}" -v d="${4:-0}" "BEGIN { print ($e) }"; }
