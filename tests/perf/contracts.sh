#!/usr/bin/env bash
# The commit rate with contracts in force beside none, in the same sitting
# (issue 25; docs/performance.md, section 18).
#
#   tests/perf/contracts.sh [ROUNDS=3] [SECS=10]
#
# Each round runs one `xgate serve` (release build, its embedded PKI) on a
# fresh data dir per variant, driven by `xgate bench` (CONNECTIONS, default
# 64, HTTP/1.1, record.send only: state, treasury, gsa and hhs each send to
# the next) for SECS seconds as fast as the gateway answers, with the
# repository's default policy and:
#
#   none     no contract;
#   ten      10 contracts on envelope:record.send, each condition
#            evaluated on every record and false (three comparisons and a
#            prefix test: what a routing rule costs), so no act is taken;
#   hundred  100 such contracts;
#   acting   the ten, one of which acts on every record (notify gsa): each
#            record is followed in its commit by a contract.act entry and a
#            notice in gsa's inbox.
#
# Each run prints records per second accepted, the p99 of the submissions,
# errors, the log's size after it (entries: records and acts), CPU seconds
# of the gateway and of the generator, and the generator's share; then the
# median ratios of each variant's rate to none's.
set -euo pipefail
[ -z "${CONTRACTS_DEBUG:-}" ] || set -x
rounds=${1:-3}
secs=${2:-10}
connections=${CONNECTIONS:-64}
cd "$(dirname "$0")/../.."
cargo build --release -q -p xgate
xgate=$(realpath target/release/xgate)
. tests/perf/serve.sh
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
command -v jq > /dev/null || { echo "contracts.sh needs jq" >&2; exit 1; }

# CPU seconds (user + system) of process $1 so far.
cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# A policy file: the default rules, $1 contracts that never fire on a
# record, and with $2 = acting one more that notifies gsa of every record.
policy() {
  cat policies/default.toml
  local i
  for i in $(seq "$1"); do
    printf '\n[[contract]]\nname = "route-%s"\non = "envelope:record.send"\n' "$i"
    printf '%s\n' "when = 'entry.from == \"treasury\" && entry.to == \"gsa\" && entry.kind == \"record.send\" && entry.jti.startsWith(\"never-$i-\")'"
    printf 'do = "escalate"\n'
  done
  if [ "${2:-}" = acting ]; then
    printf '\n[[contract]]\nname = "tell-gsa"\non = "envelope:record.send"\n'
    printf "when = 'entry.kind == \"record.send\"'\ndo = \"notify\"\nto = \"gsa\"\n"
  fi
}

# One run of variant $1; prints "rate p99 errors size gateway_cpu gen_cpu".
run() {
  local variant=$1 dir count=0 acting=""
  dir=$(mktemp -d -p "$work")
  case $variant in
    ten) count=10 ;;
    hundred) count=100 ;;
    acting) count=9; acting=acting ;;
  esac
  policy "$count" "$acting" > "$dir/policy.toml"
  XGATE_POLICY="$dir/policy.toml" start_gateway "$xgate" "$dir/g"
  pids+=("$gateway_pid")
  local pki="$dir/g/data/pki" g0 g1 out gen size
  g0=$(cpu "$gateway_pid")
  out=$(/usr/bin/time -f '%U %S' -o "$work/time" "$xgate" bench --pki "$pki" --gateway "$gateway_url" \
    --connections "$connections" --duration "$secs" --mix record.send=1 --json 2> "$work/bench.err")
  gen=$(awk '{ print $1 + $2 }' "$work/time")
  g1=$(cpu "$gateway_pid")
  size=$(curl -s --cacert "$pki/ca.crt" --cert "$pki/state/tls.crt" --key "$pki/state/tls.key" \
    "$gateway_url/v1/log/checkpoint" | sed -n 2p)
  kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true
  echo "$out" | jq -r --arg g "$(awk -v a="$g0" -v b="$g1" 'BEGIN { print b - a }')" --arg c "$gen" --arg s "${size:--}" \
    '"\(.per_second) \(.latency_ms.p99) \(.errors | add // 0) \($s) \($g) \($c)"'
}

declare -A rates
printf '%-8s %-5s %9s %8s %6s %9s %8s %8s %6s\n' variant round "rec/s" "p99 ms" errors "log size" "gw cpu" "gen cpu" "gen %"
for round in $(seq "$rounds"); do
  for variant in none ten hundred acting; do
    read -r rate p99 errors size gw gen <<< "$(run "$variant")"
    share=$(awk -v g="$gw" -v c="$gen" 'BEGIN { printf "%.0f", 100 * c / (g + c) }')
    printf '%-8s %-5s %9.0f %8.1f %6s %9s %8.1f %8.1f %6s\n' "$variant" "$round" "$rate" "$p99" "$errors" "$size" "$gw" "$gen" "$share"
    rates[$variant,$round]=$rate
  done
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for variant in ten hundred acting; do
  ratio=$(for r in $(seq "$rounds"); do awk -v a="${rates[$variant,$r]}" -v b="${rates[none,$r]}" 'BEGIN { print a / b }'; done | median)
  printf 'median %s/none: %.2f\n' "$variant" "$ratio"
done
