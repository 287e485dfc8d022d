#!/usr/bin/env bash
# The gateway on the embedded store, on PostgreSQL with one replica and
# with two replicas on one log, measured in the same run, alternating
# rounds (issue 23).
#
#   tests/perf/replicas.sh [ROUNDS=3] [SECONDS=10]
#
# Environment: CONNECTIONS (64 in all; two replicas get half each),
# BENCH_ARGS (extra `xgate bench` arguments), KEEP (a directory to copy
# the results to), PG_BINDIR (PostgreSQL's binaries; default: pg_config's,
# else the newest /usr/lib/postgresql/*/bin).
#
# 1. builds the release `xgate`; starts a throwaway PostgreSQL cluster on a
#    free loopback port with fsync and synchronous_commit on (as root, as
#    the `postgres` user), and one database per configuration;
# 2. starts three kinds of gateway over one PKI: on its data directory
#    (embedded), on PostgreSQL (one replica), and two replicas on one
#    database (the second with a copy of the first's data directory: the
#    same log key);
# 3. each round: `xgate bench` record.send exchanges against the embedded
#    gateway, the single replica, then both replicas at once (one bench
#    each, half the connections each, rates added);
# 4. after each PostgreSQL run reads the replicas' xgate_store_* metrics:
#    batches, entries, the lock's hold and wait, the commit round trip,
#    round trips and bytes per batch; the serial ceiling is one batch per
#    mean hold time: 1e6 / hold_us batches/s, times the entries per batch;
# 5. prints each run with the generator's and the server's CPU share, then
#    medians and ratios against the embedded store of the same round.
set -euo pipefail
rounds=${1:-3}
secs=${2:-10}
connections=${CONNECTIONS:-64}
cd "$(dirname "$0")/../.."

cargo build --release -q -p xgate --bin xgate
xgate=$PWD/target/release/xgate

bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "PostgreSQL is not installed (Debian: apt-get install postgresql)" >&2; exit 1; }

dir=$(mktemp -d)
chmod 755 "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$bindir/pg_ctl" -D "$dir/pg" -m immediate stop > /dev/null 2>&1 || true
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$dir"/*.jsonl "$dir"/*.txt "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# initdb and postgres refuse to run as root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi
}
mkdir -p "$dir/pg"
[ "$(id -u)" -ne 0 ] || chown postgres: "$dir/pg"
as_pg "$bindir/initdb" -D "$dir/pg" -A trust -U xgate --no-sync -E UTF8 --locale=C > /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$bindir/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w -o \
  "-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=256MB" \
  start > /dev/null
db() { # name: creates a database and prints its URL
  "$bindir/psql" -q "postgres://xgate@127.0.0.1:$port/postgres" -c "CREATE DATABASE $1" > /dev/null
  echo "postgres://xgate@127.0.0.1:$port/$1"
}

. tests/perf/serve.sh
start_gateway "$xgate" "$dir/embedded"
pids+=("$gateway_pid"); embedded_url=$gateway_url; embedded_pid=$gateway_pid
pki=$dir/embedded/data/pki
start_gateway "$xgate" "$dir/one" --pki "$pki" --store "$(db one)"
pids+=("$gateway_pid"); one_url=$gateway_url; one_pid=$gateway_pid
two=$(db two)
start_gateway "$xgate" "$dir/a" --pki "$pki" --store "$two"
pids+=("$gateway_pid"); a_url=$gateway_url; a_pid=$gateway_pid
mkdir -p "$dir/b"; cp -a "$dir/a/data" "$dir/b/data"
start_gateway "$xgate" "$dir/b" --pki "$pki" --store "$two"
pids+=("$gateway_pid"); b_url=$gateway_url; b_pid=$gateway_pid

{
  echo "machine: $(nproc) cores, $(uname -sr); PostgreSQL $("$bindir/postgres" --version | awk '{print $3}'), fsync on"
} | tee "$dir/machine.txt"

bench() { # url, output file, connections, server pid
  local url=$1 out=$2 conns=$3 pid=$4
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
  "$xgate" bench --pki "$pki" --gateway "$url" --duration "$secs" --json --connections "$conns" \
    --envelopes $(( 12000 * secs )) --server-pid "$pid" ${BENCH_ARGS:-} 2>/dev/null >> "$dir/$out"
}
store() { # url: the store_* counters of the gateway at url, one JSON object
  curl -s --cacert "$pki/ca.crt" --cert "$pki/state/tls.crt" --key "$pki/state/tls.key" "$1/metrics" \
    | python3 -c '
import json, sys
m = {}
for line in sys.stdin:
    if line.startswith("xgate_store_") and not line.startswith("#"):
        name, value = line.split()[:2]
        m[name.removeprefix("xgate_store_").removesuffix("_total")] = float(value)
print(json.dumps(m))'
}
report() { # label, output file, [store before, store after] per replica...
  python3 - "$@" <<'EOF'
import json, sys
label, out = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(out).read().splitlines()[-int(sys.argv[3]):]]
rate = sum(r["per_second"] for r in runs)
p99 = max(r["latency_ms"]["p99"] for r in runs)
errors = sum(sum(r["errors"].values()) for r in runs)
gen = sum(((r.get("cpu") or {}).get("generator") or {}).get("share") or 0 for r in runs)
srv = sum(((r.get("cpu") or {}).get("server") or {}).get("share") or 0 for r in runs)
line = f"  {label:<22} {rate:>8.0f}/s  p99 {p99:6.1f} ms  errors {errors}  generator {gen*100:4.1f}%  server {srv*100:4.1f}%"
pairs = sys.argv[4:]
if pairs:
    d = {}
    for before, after in zip(pairs[::2], pairs[1::2]):
        b, a = json.loads(before), json.loads(after)
        for k in a:
            if k.endswith("max_microseconds"):
                d[k] = max(d.get(k, 0), a[k])
            else:
                d[k] = d.get(k, 0) + a[k] - b.get(k, 0)
    n = d.get("batches", 0) or 1
    hold = d.get("lock_hold_microseconds", 0) / n
    per = d.get("entries", 0) / n
    line += (f"\n  {'':22} {n:.0f} batches, {per:.1f} entries/batch, lock hold {hold:.0f} us/batch "
             f"(commit {d.get('commit_microseconds', 0) / n:.0f}, wait {d.get('lock_wait_microseconds', 0) / n:.0f}), "
             f"{d.get('round_trips', 0) / n:.2f} round trips and {d.get('bytes_sent', 0) / n / 1024:.1f} KiB/batch, "
             f"{d.get('bytes_sent', 0) / max(d.get('entries', 1), 1):.0f} B/exchange; "
             f"serial ceiling {1e6 / hold if hold else 0:.0f} batches/s = {1e6 / hold * per if hold else 0:.0f} exchanges/s at this batch size")
    json.dump({"label": label, "rate": rate, "hold_us": hold, "entries_per_batch": per, "batches": n},
              open(out.replace(".jsonl", "-store.txt"), "a")); open(out.replace(".jsonl", "-store.txt"), "a").write("\n")
print(line)
EOF
}

for round in $(seq "$rounds"); do
  echo "round $round/$rounds"
  bench "$embedded_url" embedded.jsonl "$connections" "$embedded_pid"
  report embedded "$dir/embedded.jsonl" 1
  before=$(store "$one_url")
  bench "$one_url" one.jsonl "$connections" "$one_pid"
  report "postgres, 1 replica" "$dir/one.jsonl" 1 "$before" "$(store "$one_url")"
  ba=$(store "$a_url"); bb=$(store "$b_url")
  bench "$a_url" two.jsonl $(( connections / 2 )) "$a_pid" &
  first=$!
  bench "$b_url" two.jsonl $(( connections / 2 )) "$b_pid"
  wait "$first"
  report "postgres, 2 replicas" "$dir/two.jsonl" 2 "$ba" "$(store "$a_url")" "$bb" "$(store "$b_url")"
done

python3 - "$dir" <<'EOF'
import json, statistics, sys
d = sys.argv[1]
def rates(name, per_run=1):
    runs = [json.loads(l)["per_second"] for l in open(f"{d}/{name}.jsonl")]
    return [sum(runs[i:i + per_run]) for i in range(0, len(runs), per_run)]
e, one, two = rates("embedded"), rates("one"), rates("two", 2)
print()
print(f"{'':24} {'median/s':>9}   ratio to embedded, per round")
for label, r in (("embedded (sled)", e), ("postgres, 1 replica", one), ("postgres, 2 replicas", two)):
    ratios = [a / b for a, b in zip(r, e)]
    print(f"{label:<24} {statistics.median(r):>9.0f}   {statistics.median(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)})")
for name in ("one", "two"):
    rows = [json.loads(l) for l in open(f"{d}/{name}-store.txt")]
    hold = statistics.median(r["hold_us"] for r in rows)
    per = statistics.median(r["entries_per_batch"] for r in rows)
    print(f"{name} replica(s): median lock hold {hold:.0f} us/batch, {per:.1f} entries/batch: "
          f"serial ceiling {1e6 / hold:.0f} batches/s, {1e6 / hold * per:.0f} exchanges/s at this batch size")
EOF
