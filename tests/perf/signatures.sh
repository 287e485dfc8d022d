#!/usr/bin/env bash
# Exchanges/s of a gateway whose agencies sign with ES256 against one whose
# agencies sign with EdDSA (checked in batches), in the same sitting,
# alternating (performance.md section 14).
#
#   tests/perf/signatures.sh [ROUNDS=3] [SECONDS=10]
#
# Environment: CONNECTIONS (64), KEEP (a directory to copy the results to).
#
# 1. builds the release `xgate`;
# 2. makes two PKIs for state, treasury, gsa and hhs (`xgate certs init`,
#    then with `--signing-alg EdDSA`), and starts a gateway on each
#    (`xgate serve --pki DIR`, fresh data dirs);
# 3. measures the verify ceilings in the same run (`openssl speed ecdsap256`
#    and `ed25519`, one process, then `-multi` one per core);
# 4. each round, alternating: `xgate bench` full durable record.send
#    exchanges against the ES256 gateway, then the EdDSA one;
# 5. prints each run (with the gateway's CPU per exchange, from
#    /proc/PID/stat around the run), the medians, and the EdDSA gateway's
#    batch sizes (`xgate_signature_batch_size` from its /metrics, read with
#    `curl` over mutual TLS as state).
set -euo pipefail
rounds=${1:-3}
secs=${2:-10}
connections=${CONNECTIONS:-64}
cd "$(dirname "$0")/../.."

cargo build --release -q -p xgate --bin xgate
xgate=$PWD/target/release/xgate

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$dir"/*.jsonl "$dir"/*.ticks "$dir"/ceilings.txt "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

agencies=(--agency state --agency treasury --agency gsa --agency hhs)
"$xgate" certs init --dir "$dir/pki-es256" "${agencies[@]}" > /dev/null
"$xgate" certs init --dir "$dir/pki-eddsa" "${agencies[@]}" --signing-alg EdDSA > /dev/null

. tests/perf/serve.sh
start_gateway "$xgate" "$dir/es256" --pki "$dir/pki-es256"
pids+=("$gateway_pid")
es256_url=$gateway_url
es256_pid=$gateway_pid
start_gateway "$xgate" "$dir/eddsa" --pki "$dir/pki-eddsa"
pids+=("$gateway_pid")
eddsa_url=$gateway_url
eddsa_pid=$gateway_pid

cores=$(nproc)
{
  echo "machine: $(nproc) cores, $(uname -sr); $(openssl version)"
  es() { openssl speed -seconds 3 "$@" ecdsap256 2>/dev/null | awk '/256 bits ecdsa/ {print $NF}' | tail -1; }
  ed() { openssl speed -seconds 3 "$@" ed25519 2>/dev/null | awk '/253 bits EdDSA/ {print $NF}' | tail -1; }
  echo "es256_verify_per_second_one_core: $(es)"
  echo "es256_verify_per_second_all_cores: $(es -multi "$cores")"
  echo "ed25519_verify_per_second_one_core: $(ed)"
  echo "ed25519_verify_per_second_all_cores: $(ed -multi "$cores")"
} > "$dir/ceilings.txt"
cat "$dir/ceilings.txt"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
bench() { # name, pki, url, gateway pid
  local name=$1 pki=$2 url=$3 pid=$4 before after
  before=$(ticks "$pid")
  "$xgate" bench --pki "$pki" --gateway "$url" --duration "$secs" --connections "$connections" \
    --envelopes $(( 25000 * secs )) --json 2>/dev/null >> "$dir/$name.jsonl"
  after=$(ticks "$pid")
  echo $(( after - before )) >> "$dir/$name.ticks"
  tail -1 "$dir/$name.jsonl" | python3 -c '
import json, sys
r = json.load(sys.stdin)
errors = sum(r["errors"].values())
rate, p50, p99 = r["per_second"], r["latency_ms"]["p50"], r["latency_ms"]["p99"]
cpu = int(sys.argv[2]) / int(sys.argv[3]) / (rate * int(sys.argv[4])) * 1e6
print(f"  {sys.argv[1]:<6} {rate:>9.0f}/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}  "
      f"gateway CPU {cpu:5.0f} us/exchange")
' "$name" "$(( after - before ))" "$(getconf CLK_TCK)" "$secs"
}
for round in $(seq "$rounds"); do
  echo "round $round/$rounds"
  bench es256 "$dir/pki-es256" "$es256_url" "$es256_pid"
  bench eddsa "$dir/pki-eddsa" "$eddsa_url" "$eddsa_pid"
done

python3 - "$dir" <<'EOF'
import json, statistics, sys
d = sys.argv[1]
rates = {}
for name in ("es256", "eddsa"):
    runs = [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
    rates[name] = [r["per_second"] for r in runs]
    p99 = [r["latency_ms"]["p99"] for r in runs]
    print(f"{name}: {min(rates[name]):.0f}-{max(rates[name]):.0f}/s, median {statistics.median(rates[name]):.0f}/s; "
          f"p99 {min(p99):.1f}-{max(p99):.1f} ms")
print(f"eddsa/es256 (medians): {statistics.median(rates['eddsa']) / statistics.median(rates['es256']):.2f}")
EOF

# The EdDSA gateway's batches, as its /metrics counts them.
curl -s --cacert "$dir/pki-eddsa/ca.crt" --cert "$dir/pki-eddsa/state/tls.crt" \
  --key "$dir/pki-eddsa/state/tls.key" "$eddsa_url/metrics" \
  | awk '/^xgate_signature_batch/ {print "  " $0}'
