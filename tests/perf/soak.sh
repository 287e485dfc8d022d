#!/usr/bin/env bash
# Soak: run `xgate serve` at half its measured maximum for a while and watch
# its resident memory and open file descriptors; they must stay flat.
#
#   tests/perf/soak.sh [MINUTES=17] [SAMPLE_SECS=10]
#
# 1. builds the release binary and starts `xgate serve` on a fresh data dir;
# 2. measures the maximum with a 10 s `xgate bench` (64 connections, mixed
#    record.send=8,medical.request=1,asset.register=1, or SOAK_MIX);
# 3. runs `xgate bench --rate --drain` at half that, in back-to-back runs of
#    at most 200 s (pre-signed envelopes live 300 s), for MINUTES; the
#    receiving agencies read and acknowledge their inboxes as they would in
#    real use (SOAK_DRAIN=0 leaves every envelope stored instead);
# 4. samples VmRSS, the open file descriptors and, of those, the sockets
#    every SAMPLE_SECS and prints them;
# 5. judges what follows the warm-up, SOAK_WARMUP seconds (420: the replay
#    window, which holds every id for its envelope's lifetime plus the clock
#    skew, 300 + 60 s at the defaults, is full by then, plus a minute). It
#    passes if the largest one-minute mean of resident memory is within
#    10 % of the smallest (single samples swing by about 5 % as sled
#    consolidates nodes, so they are printed but not judged), the
#    descriptors other than sockets (files: the database, tiles, logs) stay
#    within 10 % or grow by no more than the log's descriptor caches
#    (SOAK_FD_CACHES, 320: 256 tile files and 64 directories), and sockets never exceed the load's connections plus a
#    few. Sockets alone dip between two bench runs, when the generator
#    reconnects. Exit 1 otherwise. The default MINUTES leaves ten minutes to
#    judge.
set -euo pipefail
minutes=${1:-17}
sample=${2:-10}
cd "$(dirname "$0")/../.."
cargo build --release -q -p xgate --bin xgate
xgate=./target/release/xgate
dir=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$dir"' EXIT
. tests/perf/serve.sh
start_gateway "$xgate" "$dir"
pid=$gateway_pid url=$gateway_url
mix=${SOAK_MIX:-record.send=8,medical.request=1,asset.register=1}
drain=--drain
[ "${SOAK_DRAIN:-1}" = 0 ] && drain=
bench() { "$xgate" bench --pki "$dir/data/pki" --gateway "$url" --connections 64 --mix "$mix" --json "$@" 2>/dev/null; }
max=$(bench --duration 10 | python3 -c 'import json,sys; print(json.load(sys.stdin)["per_second"])')
rate=$(python3 -c "print(round($max / 2))")
echo "maximum ${max%.*}/s; soaking at $rate/s for $minutes min (pid $pid)"

(
  end=$(( $(date +%s) + minutes * 60 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    left=$(( end - $(date +%s) ))
    run=$(( left < 200 ? left : 200 ))
    [ "$run" -ge 1 ] || break
    bench --duration "$run" --rate "$rate" --envelopes $(( rate * run + 1000 )) $drain >> "$dir/bench.jsonl"
  done
) &
load=$!

printf '%6s %10s %6s %8s\n' secs rss_kib fds sockets
start=$(date +%s)
samples=()
while kill -0 "$load" 2>/dev/null; do
  sleep "$sample"
  t=$(( $(date +%s) - start ))
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  sockets=$(ls -l "/proc/$pid/fd" 2>/dev/null | grep -c 'socket:' || true)
  printf '%6d %10d %6d %8d\n' "$t" "$rss" "$fds" "$sockets"
  samples+=("$t $rss $fds $sockets")
done
wait "$load"
echo "bench runs:"; python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    secs, rate, p99, errors = r["seconds"], r["per_second"], r["latency_ms"]["p99"], sum(r["errors"].values())
    drained = r.get("drained")
    print(f"  {secs:.0f} s: {rate:.0f}/s, p99 {p99:.1f} ms, errors {errors}, inbox envelopes acknowledged {drained}")
' "$dir/bench.jsonl"
verdict=0
printf '%s\n' "${samples[@]}" | SOAK_WARMUP="${SOAK_WARMUP:-420}" SOAK_SAMPLE="$sample" python3 -c '
import os, sys
rows = [list(map(int, l.split())) for l in sys.stdin if l.strip()]
for r in rows:
    r.append(r[2] - r[3])  # descriptors other than sockets
warmup = int(os.environ["SOAK_WARMUP"])
warm = [r for r in rows if r[0] > warmup] or rows
ok = True

def judge(name, lo, hi, what):
    flat = hi <= lo * 1.10
    print(f"{name}: {lo}..{hi} {what} ({(hi / lo - 1) * 100:.1f} %): " + ("flat" if flat else "NOT flat"))
    return flat

minutes = {}
for r in warm:
    minutes.setdefault((r[0] - warmup - 1) // 60, []).append(r[1])
# a trailing part-minute of a sample or two is noise, not a mean
need = max(1, 30 // int(os.environ["SOAK_SAMPLE"]))
means = [round(sum(v) / len(v)) for v in minutes.values() if len(v) >= need] or [r[1] for r in warm]
lo, hi = min(r[1] for r in warm), max(r[1] for r in warm)
print(f"rss samples after {warmup} s: {lo}..{hi} ({(hi / lo - 1) * 100:.1f} %)")
ok &= judge("rss", min(means), max(means), f"one-minute means of {len(means)} minutes after {warmup} s")
# The log keeps at most 256 tile files and 64 directories open
# (ledger/src/tlog/dir.rs), filling those caches as it grows: descriptors
# other than sockets pass if flat, or if they grew by no more than those.
caches = int(os.environ.get("SOAK_FD_CACHES", "320"))
lo, hi = min(r[4] for r in warm), max(r[4] for r in warm)
if hi <= lo * 1.10:
    ok &= judge("files", lo, hi, f"after {warmup} s")
else:
    within = hi <= lo + caches
    print(f"files: {lo}..{hi} after {warmup} s, +{hi - lo} against the {caches} descriptors the store caches: "
          + ("bounded" if within else "NOT bounded"))
    ok &= within
most = max(r[3] for r in rows)
bounded = most <= 64 + 8
ok &= bounded
print(f"sockets: at most {most} for 64 connections: " + ("bounded" if bounded else "NOT bounded"))
sys.exit(0 if ok else 1)
' || verdict=$?
exit "$verdict"
