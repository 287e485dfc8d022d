#!/usr/bin/env bash
# Exchanges across gateways beside one gateway's, in the same sitting
# (issue 21; docs/performance.md, section 13).
#
#   tests/perf/federation.sh [ROUNDS=3] [SECS=10]
#
# Each round runs, on fresh data dirs, driven by `xgate bench` (CONNECTIONS,
# default 64, HTTP/1.1, record.send only) for SECS seconds as fast as the
# gateway answers:
#
#   single   one `xgate serve` (its embedded PKI): state, treasury, gsa
#            and hhs each send to the next;
#   local    gateway `a` of a two-gateway federation, its agencies
#            (state, treasury) sending to each other: what being a
#            federation's gateway costs when nothing is forwarded;
#   forward  the same gateway `a`, its agencies sending to gsa and hhs,
#            served by gateway `b`: each exchange is logged at a, queued,
#            forwarded over mutual TLS, checked and logged at b;
#   paced    the same at FORWARD_RATE (default 800) exchanges per second,
#            below what forwarding delivers: the delivery latency when no
#            backlog builds (under `forward` it is the backlog's).
#
# For forward it then waits until a's forward queue is empty, and prints
# the delivered rate (exchanges over the load plus the drain) and the
# delivery latency, commit at a to b's receipt settled at a, p50 and p99
# read from a's `xgate_forward_delivery_seconds` buckets (ratio 1.25:
# within 12 %). Each run prints: exchanges per second accepted, p99 of the
# submissions, errors, CPU seconds of the gateway(s) and of the
# generator, the generator's share; then the median ratios to single.
set -euo pipefail
[ -z "${FEDERATION_DEBUG:-}" ] || set -x
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

# CPU seconds (user + system) of process $1 so far.
cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# /metrics of the gateway at $1, as agency $3 of the PKI $2.
metrics() {
  curl -s --cacert "$2/ca.crt" --cert "$2/$3/tls.crt" --key "$2/$3/tls.key" "$1/metrics"
}

# Runs the bench against $1 with PKI $2 and extra args; prints its JSON
# (its errors go to $work/bench.err) and leaves the generator's CPU seconds
# in $work/gen (it runs in a command substitution: no variable survives).
bench() {
  local url=$1 pki=$2
  shift 2
  /usr/bin/time -f '%U %S' -o "$work/time" "$xgate" bench --pki "$pki" --gateway "$url" \
    --connections "$connections" --duration "$secs" --mix record.send=1 --json "$@" 2> "$work/bench.err"
  awk '{ print $1 + $2 }' "$work/time" > "$work/gen"
}

# p-quantile $2 (0-1) of histogram $1 from a /metrics text on stdin: the
# upper bound of the first bucket holding it, in milliseconds.
quantile() {
  awk -v name="$1_bucket" -v q="$2" '
    index($1, name "{") == 1 { split($1, a, "le=\""); le = a[2]; sub(/".*/, "", le); n++; les[n] = le; counts[n] = $2 }
    END { total = counts[n]; for (i = 1; i <= n; i++) if (counts[i] >= q * total) { printf "%.1f", les[i] * 1000; exit } }'
}

# One run of $1 (single, local or forward); prints
# "rate p99 errors gateway_cpu gen_cpu share [delivered p50 p99 drain]".
run() {
  local kind=$1 dir
  dir=$(mktemp -d -p "$work")
  if [ "$kind" = single ]; then
    start_gateway "$xgate" "$dir/g"
    pids+=("$gateway_pid")
    local g0 out g1
    g0=$(cpu "$gateway_pid")
    out=$(bench "$gateway_url" "$dir/g/data/pki")
    gen_cpu=$(cat "$work/gen")
    g1=$(cpu "$gateway_pid")
    kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true
    echo "$out" | jq -r --arg g "$(awk -v a="$g0" -v b="$g1" 'BEGIN { print b - a }')" --arg c "$gen_cpu" \
      '"\(.per_second) \(.latency_ms.p99) \(.errors | add // 0) \($g) \($c)"'
    return
  fi
  local pa pb
  pa=$(free_port); pb=$(free_port)
  "$xgate" certs init --dir "$dir/pki" --gateway "a=https://127.0.0.1:$pa" --gateway "b=https://127.0.0.1:$pb" \
    --agency state@a --agency treasury@a --agency gsa@b --agency hhs@b > /dev/null
  start_gateway "$xgate" "$dir/a" --pki "$dir/pki" --gateway-id a --listen "127.0.0.1:$pa"
  local a_pid=$gateway_pid a_url=$gateway_url
  pids+=("$a_pid")
  start_gateway "$xgate" "$dir/b" --pki "$dir/pki" --gateway-id b --listen "127.0.0.1:$pb"
  local b_pid=$gateway_pid
  pids+=("$b_pid")
  local recipients=treasury,state extra=()
  [ "$kind" != local ] && recipients=gsa,hhs
  [ "$kind" = paced ] && extra=(--rate "${FORWARD_RATE:-800}")
  local a0 b0 out start drain waiting
  a0=$(cpu "$a_pid"); b0=$(cpu "$b_pid")
  start=$(date +%s.%N)
  out=$(bench "$a_url" "$dir/pki" --senders state,treasury --recipients "$recipients" "${extra[@]}")
  gen_cpu=$(cat "$work/gen")
  # Until a has forwarded everything (or a minute has passed).
  for _ in $(seq 600); do
    waiting=$(metrics "$a_url" "$dir/pki" state | awk '$1 == "xgate_forward_queue{gateway=\"b\"}" { print $2 }')
    [ "${waiting:-0}" = 0 ] && break
    sleep 0.1
  done
  drain=$(awk -v s="$start" -v e="$(date +%s.%N)" -v l="$secs" 'BEGIN { d = e - s - l; print (d < 0 ? 0 : d) }')
  local text cpu_g
  text=$(metrics "$a_url" "$dir/pki" state)
  cpu_g=$(awk -v a="$a0" -v b="$(cpu "$a_pid")" -v c="$b0" -v d="$(cpu "$b_pid")" 'BEGIN { print (b - a) + (d - c) }')
  kill "$a_pid" "$b_pid"; wait "$a_pid" "$b_pid" 2>/dev/null || true
  local line
  line=$(echo "$out" | jq -r --arg g "$cpu_g" --arg c "$gen_cpu" '"\(.per_second) \(.latency_ms.p99) \(.errors | add // 0) \($g) \($c)"')
  if [ "$kind" != local ]; then
    local ok delivered p50 p99
    ok=$(echo "$out" | jq -r .ok)
    delivered=$(awk -v ok="$ok" -v l="$secs" -v d="$drain" 'BEGIN { printf "%.0f", ok / (l + d) }')
    p50=$(echo "$text" | quantile xgate_forward_delivery_seconds 0.5)
    p99=$(echo "$text" | quantile xgate_forward_delivery_seconds 0.99)
    line="$line $delivered $p50 $p99 $(printf '%.1f' "$drain")"
  fi
  echo "$line"
}

command -v jq > /dev/null || { echo "federation.sh needs jq" >&2; exit 1; }
declare -A rates
printf '%-8s %-5s %9s %8s %6s %8s %8s %6s %10s %8s %8s %7s\n' \
  run round "exch/s" "p99 ms" errors "gw cpu" "gen cpu" "gen %" "delivered/s" "dlv p50" "dlv p99" "drain s"
for round in $(seq "$rounds"); do
  for kind in single local forward paced; do
    read -r rate p99 errors gw gen delivered p50 dp99 drain <<< "$(run "$kind")"
    share=$(awk -v g="$gw" -v c="$gen" 'BEGIN { printf "%.0f", 100 * c / (g + c) }')
    printf '%-8s %-5s %9.0f %8.1f %6s %8.1f %8.1f %6s %10s %8s %8s %7s\n' \
      "$kind" "$round" "$rate" "$p99" "$errors" "$gw" "$gen" "$share" "${delivered:--}" "${p50:--}" "${dp99:--}" "${drain:--}"
    rates[$kind,$round]=$rate
    [ "$kind" = forward ] && rates[delivered,$round]=$delivered
    true
  done
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for kind in local forward delivered; do
  ratio=$(for r in $(seq "$rounds"); do awk -v a="${rates[$kind,$r]}" -v b="${rates[single,$r]}" 'BEGIN { print a / b }'; done | median)
  printf 'median %s/single: %.2f\n' "$kind" "$ratio"
done
