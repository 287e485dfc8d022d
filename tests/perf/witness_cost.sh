#!/usr/bin/env bash
# What gathering witnesses' cosignatures costs the exchange rate (issue 20):
# the same release build with and without witnesses, alternating, in the
# same sitting (docs/performance.md, section 12).
#
#   tests/perf/witness_cost.sh [ROUNDS=3] [SECS=10]
#
# Each round runs two gateways in turn on fresh data dirs, each driven by
# `xgate bench` (64 connections, HTTP/1.1, WITNESS_MIX, default the
# default mix) for SECS seconds as fast as it answers:
#
#   alone      `xgate serve` with no witnesses;
#   witnessed  the same with WITNESSES (3) real `xgate witness serve`
#              processes on loopback (WITNESS_ALG, default ed25519; or
#              ml-dsa-44), `witness_quorum` QUORUM (2) and
#              `witness_interval_ms` INTERVAL_MS (1000).
#
# Both start the same way (a first start creates the log, whose key the
# witnesses need, then a restart). Prints each run: exchanges per second,
# p99, errors, the CPU seconds of the gateway, of the witnesses and of the
# generator, the generator's share of all of it, and for the witnessed run
# the log's size against the size served with a quorum at the end; then the
# median witnessed/alone ratio.
set -euo pipefail
[ -z "${WITNESS_DEBUG:-}" ] || set -x
rounds=${1:-3}
secs=${2:-10}
mix=${WITNESS_MIX:-record.send=8,medical.request=1,asset.register=1}
witnesses=${WITNESSES:-3}
quorum=${QUORUM:-2}
interval=${INTERVAL_MS:-1000}
alg=${WITNESS_ALG:-ed25519}
cd "$(dirname "$0")/../.."
cargo build --release -q -p xgate
xgate=$(realpath target/release/xgate)
. tests/perf/serve.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# CPU seconds (user + system) of process $1 so far.
cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# The value of metric series $1 from the gateway's /metrics.
metric() {
  curl -s --cacert "$dir/data/pki/ca.crt" --cert "$dir/data/pki/state/tls.crt" \
    --key "$dir/data/pki/state/tls.key" "$gateway_url/metrics" |
    awk -v s="$1" '$1 == s { print $2; exit }'
}

# One run, witnessed if $1 is "witnessed": prints "rate p99 errors
# gateway_cpu witness_cpu gen_cpu served size".
run() {
  dir=$(mktemp -d -p "$work")
  gateway_pid=
  witness_pids=()
  trap '[ -z "$gateway_pid" ] || { kill "$gateway_pid" 2>/dev/null; wait "$gateway_pid" 2>/dev/null; }; for p in "${witness_pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"' EXIT
  start_gateway "$xgate" "$dir"
  key=$("$xgate" log key --data-dir "$dir/data")
  kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true
  # The restart must not read the first start's address.
  rm -f "$dir/serve.out"
  config="$dir/gateway.toml"
  if [ "$1" = witnessed ]; then
    printf 'witness_quorum = %s\nwitness_interval_ms = %s\n' "$quorum" "$interval" > "$config"
    for i in $(seq "$witnesses"); do
      vkey=$("$xgate" witness init --dir "$dir/w$i" --name "w$i.witness.example" --alg "$alg" | tail -1)
      "$xgate" witness serve --dir "$dir/w$i" --listen 127.0.0.1:0 --log "$key" > "$dir/w$i.out" 2> /dev/null &
      witness_pids+=($!)
      for _ in $(seq 100); do grep -q listening "$dir/w$i.out" 2>/dev/null && break; sleep 0.1; done
      url=$(awk '/witness listening on/ {print $5; exit}' "$dir/w$i.out")
      printf '\n[[witnesses]]\nurl = "%s"\nvkey = "%s"\n' "$url" "$vkey" >> "$config"
    done
  else
    : > "$config"
  fi
  start_gateway "$xgate" "$dir" --config "$config"
  g0=$(cpu "$gateway_pid"); w0=0
  for p in "${witness_pids[@]}"; do w0=$(awk -v a="$w0" -v b="$(cpu "$p")" 'BEGIN { print a + b }'); done
  out=$(/usr/bin/time -f '%U %S' -o "$dir/generator.time" "$xgate" bench --pki "$dir/data/pki" \
    --gateway "$gateway_url" --connections 64 --duration "$secs" --mix "$mix" --json 2>/dev/null)
  out="$out
$(cat "$dir/generator.time")"
  g1=$(cpu "$gateway_pid"); w1=0
  for p in "${witness_pids[@]}"; do w1=$(awk -v a="$w1" -v b="$(cpu "$p")" 'BEGIN { print a + b }'); done
  sleep $(( interval / 1000 + 2 ))
  served=$(metric xgate_cosigned_checkpoint_size); size=$(metric xgate_log_size)
  echo "$out" | python3 -c '
import json, sys
lines = sys.stdin.read().strip().splitlines()
r = json.loads("\n".join(lines[:-1]))
user, system = map(float, lines[-1].split())
g0, g1, w0, w1, served, size = (float(x or 0) for x in sys.argv[1:7])
print(r["per_second"], r["latency_ms"]["p99"], sum(r["errors"].values()), g1 - g0, w1 - w0, user + system, int(served), int(size))
' "$g0" "$g1" "$w0" "$w1" "${served:-0}" "${size:-0}"
}

results=()
for round in $(seq "$rounds"); do
  a=$(run alone); w=$(run witnessed)
  for pair in "alone $a" "witnessed $w"; do
    set -- $pair
    share=$(python3 -c "g,w,b=$5,$6,$7; print(f'{100*b/(g+w+b):.0f}')")
    printf 'round %d %-9s %6.0f/s  p99 %6.1f ms  errors %s  cpu: gateway %.1f s, witnesses %.1f s, generator %.1f s (%s %%)' \
      "$round" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$share"
    [ "$1" = witnessed ] && printf '  served %s of %s entries' "$8" "$9"
    printf '\n'
  done
  results+=("$a $w")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
ratios = [r[8] / r[0] for r in rows]
print(f"witnessed/alone: median {statistics.median(ratios):.2f}x (per round "
      + ", ".join(f"{x:.2f}" for x in ratios) + f"); median {statistics.median(r[0] for r in rows):.0f}/s alone, "
      f"{statistics.median(r[8] for r in rows):.0f}/s witnessed")
'
