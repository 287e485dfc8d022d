#!/usr/bin/env bash
# The store's share of the gateway's CPU at load, from a profile, for one or
# more gateway builds in the same sitting (docs/performance.md, "The store
# of issue 19").
#
#   tests/perf/store_cpu.sh RATE SECS BIN [BIN...]
#
# For each BIN in turn (ROUNDS times, alternating): starts `BIN serve` on a
# fresh data dir (under /tmp, or STORE_DIR), drives it with the last BIN's
# `xgate bench --connections 64 --mix MIX --drain --rate RATE` (STORE_MIX,
# default record.send=8,medical.request=1,asset.register=1), and after a
# warm-up of WARMUP seconds (10) profiles the gateway for SECS seconds
# (`perf record -F 299 --call-graph dwarf -p PID`), reading the gateway's
# and the generator's CPU (/proc/PID/stat utime+stime) around the profile.
#
# Each sample of the gateway is put in the first class it matches, by its
# thread, then by the frames of its call path (kernel time counted with the
# call path that entered it):
#
#   sled         a sled-io thread, or a frame in `sled::`
#   journal      the journal's preparer thread, or a frame in
#                `xgate_ledger::journal` (the commit's pwritev + fdatasync)
#   integrator   the xgate-integrate thread (tiles, bundles, the sidecar,
#                checkpoints, syncing the body files and sled, releases)
#   files        a frame in `xgate_ledger::{blobs,tlog,nodes}` elsewhere
#                (bodies written at commit, tiles read for proofs)
#   store        the four above; "store" is the figure of issue 19 (sled
#                alone was 30 % of the gateway before it)
#   es256        a frame in josekit/OpenSSL's EC verify
#   other        everything else (TLS, HTTP, JSON, policy, receipts,
#                the rest of the ledger)
#
# Needs perf (Debian: linux-perf) and permission to profile.
set -euo pipefail
rate=${1:?usage: store_cpu.sh RATE SECS BIN [BIN...]}
secs=${2:?usage: store_cpu.sh RATE SECS BIN [BIN...]}
shift 2
[ $# -ge 1 ] || { echo "usage: store_cpu.sh RATE SECS BIN [BIN...]" >&2; exit 2; }
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done
bench_bin=${bins[-1]}
rounds=${ROUNDS:-1}
warmup=${WARMUP:-10}
mix=${STORE_MIX:-record.send=8,medical.request=1,asset.register=1}
cd "$(dirname "$0")/../.."
. tests/perf/serve.sh
work=$(mktemp -d -p "${STORE_DIR:-/tmp}" store_cpu.XXXXXX)
trap 'rm -rf "$work"' EXIT

run() { # BIN
  local bin=$1 dir
  dir=$(mktemp -d -p "$work")
  start_gateway "$bin" "$dir"
  local pid=$gateway_pid url=$gateway_url
  "$bench_bin" bench --pki "$dir/data/pki" --gateway "$url" --connections 64 --mix "$mix" \
    --rate "$rate" --duration $(( warmup + secs + 5 )) --envelopes $(( rate * (warmup + secs + 5) + 1000 )) \
    --drain --json > "$dir/bench.json" 2>/dev/null &
  local bench_pid=$!
  sleep "$warmup"
  ticks() { awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
  local g0 b0 g1 b1 t0 t1
  g0=$(ticks "$pid") b0=$(ticks "$bench_pid") t0=$(date +%s.%N)
  perf record -q -F 299 --call-graph dwarf -p "$pid" -o "$dir/perf.data" -- sleep "$secs" 2>/dev/null
  g1=$(ticks "$pid") b1=$(ticks "$bench_pid") t1=$(date +%s.%N)
  wait "$bench_pid" || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  perf script -i "$dir/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null | \
    BIN=$bin RATE=$rate G=$(( g1 - g0 )) B=$(( b1 - b0 )) T0=$t0 T1=$t1 BENCH="$dir/bench.json" python3 -c '
import json, os, re, sys
e = os.environ
hz = os.sysconf("SC_CLK_TCK")
classes = ["sled", "journal", "integrator", "files", "es256", "other"]
count = dict.fromkeys(classes, 0)
def classify(comm, frames):
    if comm.startswith("sled-io"):
        return "sled"
    if comm.startswith("xgate-journal"):
        return "journal"
    if comm.startswith("xgate-integrat"):
        return "integrator"
    text = "\n".join(frames)
    if "sled::" in text:
        return "sled"
    if "xgate_ledger::journal" in text:
        return "journal"
    if re.search(r"xgate_ledger::(blobs|tlog|nodes)", text):
        return "files"
    if re.search(r"ecdsa|ECDSA|ec_GFp|ecp_nistz256|p256_|EC_POINT|josekit::jws::alg::ecdsa", text):
        return "es256"
    return "other"
comm, frames, samples = None, [], 0
threads = {}
def add(comm, frames):
    c = classify(comm, frames)
    count[c] += 1
    t = threads.setdefault(re.sub(r"[-0-9]+$", "", comm), dict.fromkeys(classes, 0))
    t[c] += 1
for line in sys.stdin:
    if not line.strip():
        if comm is not None:
            add(comm, frames); samples += 1
        comm, frames = None, []
    elif not line.startswith((" ", "\t")):
        comm = line.split()[0]
    else:
        frames.append(line.strip())
if comm is not None:
    add(comm, frames); samples += 1
bench = json.load(open(e["BENCH"]))
window = float(e["T1"]) - float(e["T0"])
gcpu, bcpu = int(e["G"]) / hz, int(e["B"]) / hz
exchanges = bench["per_second"] * window  # the rate held over the whole run
us = gcpu / exchanges * 1e6
store = sum(count[c] for c in ("sled", "journal", "integrator", "files"))
print(json.dumps({"bin": e["BIN"], "rate": int(e["RATE"]), "held_per_second": bench["per_second"],
                  "errors": sum(bench["errors"].values()), "p99_ms": bench["latency_ms"]["p99"],
                  "window_s": window, "gateway_cpu_s": gcpu, "bench_cpu_s": bcpu,
                  "gateway_us_per_exchange": us, "samples": samples,
                  "shares": {c: count[c] / samples for c in classes}, "store_share": store / samples,
                  "by_thread": threads,
                  "store_us_per_exchange": us * store / samples}))
'
  rm -rf "$dir"
}

out=${STORE_OUT:-$(mktemp /tmp/store_cpu.XXXXXX.jsonl)}
for round in $(seq "$rounds"); do
  for b in "${bins[@]}"; do
    echo "round $round: $b at $rate/s, profiled for $secs s; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    line=$(run "$b")
    echo "$line" >> "$out"
    python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
s, w = r["shares"], r["window_s"]
g, b = r["gateway_cpu_s"], r["bench_cpu_s"]
print(f"{r['bin']}: held {r['held_per_second']:.0f}/s (p99 {r['p99_ms']} ms, errors {r['errors']}); "
      f"gateway {g / w * 100:.0f} % of a core, {r['gateway_us_per_exchange']:.0f} µs/exchange; "
      f"generator {b / (b + g) * 100:.0f} % of both")
print(f"  {r['samples']} samples: store {r['store_share'] * 100:.1f} % = {r['store_us_per_exchange']:.0f} µs/exchange "
      f"(sled {s['sled'] * 100:.1f} %, journal {s['journal'] * 100:.1f} %, integrator {s['integrator'] * 100:.1f} %, "
      f"files {s['files'] * 100:.1f} %); es256 {s['es256'] * 100:.1f} %, other {s['other'] * 100:.1f} %")
n = r["samples"]
for t, c in sorted(r["by_thread"].items(), key=lambda x: -sum(x[1].values())):
    print(f"    {t:<16} {sum(c.values()) / n * 100:5.1f} %: " +
          ", ".join(f"{k} {v / n * 100:.1f}" for k, v in c.items() if v))
PY
  done
done
echo "(JSON lines: $out)" >&2
