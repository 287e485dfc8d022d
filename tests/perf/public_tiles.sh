#!/usr/bin/env bash
# The public tlog-tiles listener under load, beside the exchange rate, in the
# same run (the machine's speed drifts; only same-run ratios are quoted).
#
#   tests/perf/public_tiles.sh [ROUNDS=3] [SECS=10]
#
# Builds the release `xgate` and the `tiles_load` example, starts one gateway
# and fills its log for 5 s (so there are full tiles to fetch), then each
# round runs, one after the other:
#   bench  `xgate bench` alone (64 connections, HTTP/1.1, PUBLIC_MIX)
#   tiles  `tiles_load` alone: TILE_CONNECTIONS (default 16) anonymous
#          HTTPS clients fetching full tiles and bundles as fast as answered
#   both   the two at once
# and prints each, then the medians: exchanges/s with the tile load over
# exchanges/s alone, and tile fetches/s with the exchange load over alone.
set -euo pipefail
rounds=${1:-3}
secs=${2:-10}
tile_connections=${TILE_CONNECTIONS:-16}
mix=${PUBLIC_MIX:-record.send=8,medical.request=1,asset.register=1}
cd "$(dirname "$0")/../.."
cargo build --release -q -p xgate --bin xgate --example tiles_load
xgate=$PWD/target/release/xgate
tiles=$PWD/target/release/examples/tiles_load
. tests/perf/serve.sh
work=$(mktemp -d)
gateway_pid=
trap '[ -z "$gateway_pid" ] || { kill "$gateway_pid" 2>/dev/null; wait "$gateway_pid" 2>/dev/null; }; rm -rf "$work"' EXIT
start_gateway "$xgate" "$work"
pki=$work/data/pki

bench() {
  "$xgate" bench --pki "$pki" --gateway "$gateway_url" --connections 64 --duration "$1" \
    --mix "$mix" --json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %s %d" % (r["per_second"], r["latency_ms"]["p99"], sum(r["errors"].values())))'
}
tiles() {
  "$tiles" "$public_url" "$pki/ca.crt" "$tile_connections" "$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.2f %.2f %.1f %d" % (r["per_second"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["mib_per_second"], r["errors"]))'
}

bench 5 > /dev/null
rows=()
for round in $(seq "$rounds"); do
  a=$(bench "$secs")
  t=$(tiles "$secs")
  tiles "$secs" > "$work/both_tiles" &
  b=$(bench "$secs")
  wait $!
  tb=$(cat "$work/both_tiles")
  read -r a_rate a_p99 a_err <<< "$a"
  read -r t_rate t_p50 t_p99 t_mib t_err <<< "$t"
  read -r b_rate b_p99 b_err <<< "$b"
  read -r tb_rate tb_p50 tb_p99 tb_mib tb_err <<< "$tb"
  printf 'round %d: bench alone %s/s (p99 %s ms, %s errors); tiles alone %s/s (p50 %s ms, p99 %s ms, %s MiB/s, %s errors); both: bench %s/s (p99 %s ms, %s errors), tiles %s/s (p50 %s ms, p99 %s ms, %s errors)\n' \
    "$round" "$a_rate" "$a_p99" "$a_err" "$t_rate" "$t_p50" "$t_p99" "$t_mib" "$t_err" \
    "$b_rate" "$b_p99" "$b_err" "$tb_rate" "$tb_p50" "$tb_p99" "$tb_err"
  rows+=("$a_rate $t_rate $b_rate $tb_rate")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
ex = [r[2] / r[0] for r in rows]
ti = [r[3] / r[1] for r in rows]
print(f"exchanges/s with the tile load / alone: median {statistics.median(ex):.2f}x (per round "
      + ", ".join("%.2f" % x for x in ex) + ")")
print(f"tile fetches/s with the exchange load / alone: median {statistics.median(ti):.2f}x (per round "
      + ", ".join("%.2f" % x for x in ti) + ")")
print(f"medians: exchanges {statistics.median(r[0] for r in rows):.0f}/s alone, "
      f"tile fetches {statistics.median(r[1] for r in rows):.0f}/s alone")
'
