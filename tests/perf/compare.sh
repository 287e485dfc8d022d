#!/usr/bin/env bash
# Same-run comparison of two gateway builds: the way every "before/after"
# figure in docs/performance.md is measured, since this machine's speed
# drifts by a third from one hour to the next.
#
#   tests/perf/compare.sh BEFORE AFTER [ROUNDS=3] [SECS=10]
#
# BEFORE and AFTER are `xgate` binaries (for example a copy of
# target/release/xgate kept before a change, and the rebuilt one). Each
# round runs both, alternating, each against a fresh `xgate serve` on a new
# data dir, driven by AFTER's `xgate bench` (64 connections, HTTP/1.1, the
# mix in COMPARE_MIX, default record.send=8,medical.request=1,asset.register=1)
# for SECS seconds. Prints each run, then the median ratio AFTER/BEFORE.
set -euo pipefail
before=${1:?usage: compare.sh BEFORE AFTER [ROUNDS] [SECS]}
after=${2:?usage: compare.sh BEFORE AFTER [ROUNDS] [SECS]}
rounds=${3:-3}
secs=${4:-10}
mix=${COMPARE_MIX:-record.send=8,medical.request=1,asset.register=1}
before=$(realpath "$before") after=$(realpath "$after")
cd "$(dirname "$0")/../.."
. tests/perf/serve.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One run of binary $1: prints "per_second p99_ms errors". It runs in a
# command substitution, a subshell, so it stops its own gateway and removes
# its data however it ends.
run() {
  dir=$(mktemp -d -p "$work")
  gateway_pid=
  trap '[ -z "$gateway_pid" ] || { kill "$gateway_pid" 2>/dev/null; wait "$gateway_pid" 2>/dev/null; }; rm -rf "$dir"' EXIT
  start_gateway "$1" "$dir"
  "$after" bench --pki "$dir/data/pki" --gateway "$gateway_url" --connections 64 \
    --duration "$secs" --mix "$mix" --json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["per_second"], r["latency_ms"]["p99"], sum(r["errors"].values()))'
}

results=()
for round in $(seq "$rounds"); do
  b=$(run "$before"); a=$(run "$after")
  printf 'round %d: before %.0f/s (p99 %s ms, %s errors), after %.0f/s (p99 %s ms, %s errors)\n' \
    "$round" $b $a
  results+=("$b $a")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
ratios = [r[3] / r[0] for r in rows]
per_round = ", ".join("%.2f" % x for x in ratios)
print(f"after/before: median {statistics.median(ratios):.2f}x (per round {per_round}); "
      f"median {statistics.median(r[0] for r in rows):.0f}/s before, "
      f"{statistics.median(r[3] for r in rows):.0f}/s after")
'
