#!/usr/bin/env bash
# Where the gateway's CPU goes at full load: the release gateway under
# `perf record --call-graph dwarf`, driven by `xgate bench`, then each
# sample put in a category by tests/perf/profile_classify.py.
#
#   tests/perf/profile.sh [SECONDS=15] [BENCH ARGS...]
#
# Environment: SIGNING_ALG (ES256 or EdDSA: the agencies' signing keys, from
# `xgate certs init --signing-alg`), CONNECTIONS (64), FREQ (perf's sampling
# rate, 299 Hz), KEEP (a directory to keep perf.data and the bench JSON in).
#
# Prints the bench run, then the share of the gateway's samples in each
# category: the floor (the signature check, TLS, the socket I/O under it,
# the store) and everything else by name.
set -euo pipefail
secs=${1:-15}
shift || true
alg=${SIGNING_ALG:-ES256}
connections=${CONNECTIONS:-64}
cd "$(dirname "$0")/../.."
command -v perf >/dev/null || { echo "perf is missing (Debian: linux-perf)" >&2; exit 1; }

cargo build --release -q -p xgate --bin xgate
xgate=$PWD/target/release/xgate

dir=$(mktemp -d)
out=${KEEP:-$dir/keep}
mkdir -p "$out"
cleanup() {
  [ -z "${gateway_pid:-}" ] || kill -INT "$gateway_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# The sample agencies the gateway makes for itself, with keys of $alg.
"$xgate" certs init --dir "$dir/pki" --signing-alg "$alg" \
  --agency state --agency treasury --agency gsa --agency hhs --auditor gao > /dev/null

# perf starts the gateway, so every thread it ever has is sampled.
cat > "$dir/perf-xgate" <<W
#!/bin/sh
exec perf record -q -F ${FREQ:-299} --call-graph dwarf -o "$out/perf.data" -- "$xgate" "\$@"
W
chmod +x "$dir/perf-xgate"
. tests/perf/serve.sh
start_gateway "$dir/perf-xgate" "$dir" --pki "$dir/pki"

"$xgate" bench --pki "$dir/pki" --gateway "$gateway_url" --connections "$connections" \
  --duration "$secs" --json "$@" | tee "$out/bench.json"
kill -INT "$gateway_pid"
wait "$gateway_pid" 2>/dev/null || true
gateway_pid=
python3 tests/perf/profile_classify.py "$out/perf.data"
