#!/usr/bin/env bash
# Side-by-side baseline: xgate against nginx on the same machine, the same
# PKI and the same load generator, alternating, several rounds.
#
#   tests/perf/baseline.sh [ROUNDS=3] [SECONDS=10]
#
# Environment: CONNECTIONS (64, keep-alive runs), HANDSHAKE_CONNECTIONS (16,
# new-connection runs), NGINX_WORKERS (auto: one per core, as xgate uses
# every core), NGINX_PORT (18443), BENCH_ARGS (extra `xgate bench`
# arguments for every run, e.g. `--threads 2`), KEEP (a directory to copy
# the results to).
#
# 1. builds the release `xgate` and installs nginx from the system package
#    manager if it is missing;
# 2. starts `xgate serve` on a fresh data dir (which makes the dev PKI), and
#    nginx on loopback with the gateway's certificate and key, the same
#    federation CA (`ssl_verify_client on`) and CRL, answering a static 201
#    to every request;
# 3. measures the ceilings in the same run: OpenSSL's raw ES256 verify rate
#    (`openssl speed ecdsap256`, one process and one per core) and the raw
#    durable append rate of the data dir's file system (4 KiB appends, each
#    followed by fdatasync: `dd oflag=dsync`);
# 4. each round, alternating: `xgate bench` full exchanges (pre-signed
#    record.send envelopes, 201 with a receipt from xgate, durable) against
#    nginx, then xgate with ES256 agencies, then a second xgate whose
#    agencies sign with Ed25519 (`xgate certs init --signing-alg EdDSA`:
#    their envelopes are verified in batches), then the default mix
#    (record.send=8,medical.request=1,asset.register=1) against the ES256
#    xgate; and new mutual-TLS connections (`--handshakes`: a full
#    handshake without resumption, then GET /healthz) against nginx then
#    xgate;
# 5. prints each run with the CPU the generator and the server took over it
#    (shares of the machine, from /proc: `xgate bench` reports them), then
#    the ratios xgate/nginx (median over the rounds), the generator's median
#    share beside each server, and xgate against the two ceilings.
set -euo pipefail
rounds=${1:-3}
secs=${2:-10}
connections=${CONNECTIONS:-64}
hs_connections=${HANDSHAKE_CONNECTIONS:-16}
workers=${NGINX_WORKERS:-auto}
nginx_port=${NGINX_PORT:-18443}
cd "$(dirname "$0")/../.."

cargo build --release -q -p xgate --bin xgate
xgate=$PWD/target/release/xgate

nginx=$(command -v nginx || true)
[ -n "$nginx" ] || { [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx; } || true
if [ -z "$nginx" ]; then
  echo "nginx is missing; installing it from the system package manager" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  if command -v apt-get >/dev/null; then
    $sudo apt-get install -y -q nginx-light >/dev/null 2>&1 \
      || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q nginx-light >/dev/null; }
  elif command -v dnf >/dev/null; then
    $sudo dnf install -y -q nginx
  elif command -v apk >/dev/null; then
    $sudo apk add -q nginx
  else
    echo "no known package manager: install nginx and run again" >&2; exit 1
  fi
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$dir"/*.jsonl "$dir"/ceilings.txt "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

. tests/perf/serve.sh
start_gateway "$xgate" "$dir"
pids+=("$gateway_pid")
xgate_url=$gateway_url
pki=$dir/data/pki
# The same sample agencies, signing with Ed25519, on a gateway of their own.
"$xgate" certs init --dir "$dir/pki-eddsa" --signing-alg EdDSA --agency state \
  --agency treasury --agency gsa --agency hhs --auditor gao > /dev/null
start_gateway "$xgate" "$dir/eddsa" --pki "$dir/pki-eddsa"
pids+=("$gateway_pid")
eddsa_url=$gateway_url

mkdir -p "$dir/nginx"
cat > "$dir/nginx.conf" <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port ssl http2;
    ssl_certificate $pki/gateway/tls.crt;
    ssl_certificate_key $pki/gateway/tls.key;
    ssl_client_certificate $pki/ca.crt;
    ssl_verify_client on;
    ssl_crl $pki/crl.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    client_max_body_size 1m;
    location / {
      default_type application/json;
      return 201 '{"static":true}';
    }
  }
}
EOF
"$nginx" -c "$dir/nginx.conf" -p "$dir/nginx" 2> "$dir/nginx/start.log" &
pids+=($!)
nginx_url=https://127.0.0.1:$nginx_port
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && break; sleep 0.1
done

cores=$(nproc)
{
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "nginx: $("$nginx" -v 2>&1 | sed 's/.*: //'), $workers worker(s); $(openssl version)"
  verify() { openssl speed -seconds 3 "$@" ecdsap256 2>/dev/null | awk '/256 bits ecdsa/ {print $NF}' | tail -1; }
  echo "es256_verify_per_second_one_core: $(verify)"
  echo "es256_verify_per_second_all_cores: $(verify -multi "$cores")"
  # 4 KiB appends, each made durable before the next, in the data dir's
  # file system: the ceiling of one synchronous writer.
  dd_out=$(dd if=/dev/zero of="$dir/data/dd-probe" bs=4k count=3000 oflag=dsync 2>&1 | tail -1)
  rm -f "$dir/data/dd-probe"
  dd_secs=$(echo "$dd_out" | awk -F', ' '{print $3}' | awk '{print $1}')
  echo "durable_4k_appends_per_second: $(python3 -c "print(round(3000 / $dd_secs))")"
} > "$dir/ceilings.txt"
cat "$dir/ceilings.txt"

bench() { # target url, output file, extra args...
  local url=$1 out=$2; shift 2
  local keys=$pki
  [ "$url" != "$eddsa_url" ] || keys=$dir/pki-eddsa
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
  "$xgate" bench --pki "$keys" --gateway "$url" --duration "$secs" --json ${BENCH_ARGS:-} "$@" 2>/dev/null >> "$dir/$out"
  tail -1 "$dir/$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
errors = sum(r["errors"].values())
rate, p50, p99 = r["per_second"], r["latency_ms"]["p50"], r["latency_ms"]["p99"]
cpu = r.get("cpu") or {}
def pct(who):
    share = (cpu.get(who) or {}).get("share")
    return "   n/a" if share is None else f"{share * 100:5.1f}%"
g, s, cores = pct("generator"), pct("server"), cpu.get("cores", "?")
shares = f"  generator {g}  server {s} of {cores} cores"
print(f"  {sys.argv[1]:<28} {rate:>9.0f}/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}{shares}")
' "$out"
}
for round in $(seq "$rounds"); do
  echo "round $round/$rounds"
  # Enough envelopes for nginx's rate; xgate needs far fewer.
  bench "$nginx_url" nginx-exchanges.jsonl --connections "$connections" --envelopes $(( 110000 * secs ))
  bench "$xgate_url" xgate-exchanges.jsonl --connections "$connections" --envelopes $(( 15000 * secs ))
  bench "$eddsa_url" eddsa-exchanges.jsonl --connections "$connections" --envelopes $(( 20000 * secs ))
  bench "$xgate_url" mix-exchanges.jsonl --connections "$connections" --envelopes $(( 15000 * secs )) \
    --mix record.send=8,medical.request=1,asset.register=1
  bench "$nginx_url" nginx-handshakes.jsonl --connections "$hs_connections" --handshakes
  bench "$xgate_url" xgate-handshakes.jsonl --connections "$hs_connections" --handshakes
done

python3 - "$dir" <<'EOF'
import json, statistics, sys
d = sys.argv[1]
def rates(name):
    return [json.loads(l)["per_second"] for l in open(f"{d}/{name}.jsonl")]
def errors(name):
    return sum(sum(json.loads(l)["errors"].values()) for l in open(f"{d}/{name}.jsonl"))
def shares(name, who):
    """The shares of the machine `who` (generator, server) took, per run."""
    out = []
    for l in open(f"{d}/{name}.jsonl"):
        s = ((json.loads(l).get("cpu") or {}).get(who) or {}).get("share")
        if s is not None:
            out.append(s)
    return out
def pct(values):
    return f"{statistics.median(values) * 100:.1f}%" if values else "n/a"
ceil = dict(l.split(": ", 1) for l in open(f"{d}/ceilings.txt").read().splitlines())
print()
print(f"{'':34} {'nginx':>9} {'xgate':>9} {'xgate/nginx':>12}")
for what in ("exchanges", "handshakes"):
    n, x = rates(f"nginx-{what}"), rates(f"xgate-{what}")
    ratios = [a / b for a, b in zip(x, n)]
    label = "full exchanges/s" if what == "exchanges" else "new mTLS connections/s"
    print(f"{label + ' (median)':34} {statistics.median(n):>9.0f} {statistics.median(x):>9.0f} "
          f"{statistics.median(ratios):>11.2f}x   (per round: {', '.join(f'{r:.2f}' for r in ratios)})")
    if errors(f"nginx-{what}") or errors(f"xgate-{what}"):
        print(f"  errors: nginx {errors(f'nginx-{what}')}, xgate {errors(f'xgate-{what}')}")
    gn, gx = shares(f"nginx-{what}", "generator"), shares(f"xgate-{what}", "generator")
    sn, sx = shares(f"nginx-{what}", "server"), shares(f"xgate-{what}", "server")
    print(f"{'  generator CPU (median share)':34} {pct(gn):>9} {pct(gx):>9}   "
          f"(server: nginx {pct(sn)}, xgate {pct(sx)}; of the whole machine)")
def p99(name):
    return statistics.median(json.loads(l)["latency_ms"]["p99"] for l in open(f"{d}/{name}.jsonl"))
print()
n = rates("nginx-exchanges")
for name, label in (("xgate-exchanges", "ES256 agencies, record.send"),
                    ("eddsa-exchanges", "EdDSA agencies, record.send"),
                    ("mix-exchanges", "ES256 agencies, default mix")):
    r = rates(name)
    ratios = [a / b for a, b in zip(r, n)]
    print(f"xgate {label:<30} {statistics.median(r):>7.0f}/s (per round: "
          f"{', '.join(f'{v:.0f}' for v in r)}), {statistics.median(ratios):.2f}x nginx, "
          f"p99 {p99(name):.1f} ms, generator {pct(shares(name, 'generator'))}, "
          f"errors {errors(name)}")
x = statistics.median(rates("xgate-exchanges"))
v = float(ceil["es256_verify_per_second_all_cores"])
a = float(ceil["durable_4k_appends_per_second"])
print()
print(f"xgate exchanges / raw ES256 verify ceiling (all cores): {x / v:.2f}  ({x:.0f} vs {v:.0f}/s)")
print(f"xgate exchanges / raw durable 4 KiB appends: {x / a:.2f}  "
      f"(group commit: one flush covers many exchanges; {a:.0f} syncs/s)")
EOF
