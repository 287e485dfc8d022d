#!/usr/bin/env bash
# What the store writes and keeps per exchange, for one or more gateway
# builds in the same sitting (docs/performance.md, section 10).
#
#   tests/perf/store.sh RATE SECS BIN [BIN...]
#
# RATE is exchanges per second (`max`: as fast as the gateway answers), SECS
# the length of the load. For each BIN in the order given (ROUNDS times,
# alternating), one run:
#
# 1. starts `BIN serve` on a fresh data dir under STORE_DIR (default /tmp);
#    put STORE_DIR on a file system nothing else writes to (a loop device,
#    below) for the device's count to be the gateway's alone;
# 2. reads the gateway's /proc/PID/io (write_bytes, cancelled_write_bytes,
#    wchar, rchar), its CPU (/proc/PID/stat utime+stime) and the sectors
#    written to the block device holding STORE_DIR (/sys/class/block/DEV/stat);
#    with perf installed (and STORE_TRACE not 0) it also records the block
#    layer's writes to that device (`perf record -a -e block:block_bio_queue`)
#    to split them by the thread that issued them: an fdatasync writes back
#    in its caller's thread (the journal's in xgate-commit, the
#    integrator's in xgate-integrate, sled's sync_file_range in sled-io),
#    ext4's journal is jbd2, what nobody synced the kernel's flusher;
# 3. drives it with the last BIN's `xgate bench --connections 64 --mix MIX
#    --drain` (STORE_MIX, default record.send=8,medical.request=1,asset.register=1)
#    at RATE for SECS, timing the generator's own CPU (its rusage);
# 4. acknowledges what the generator's readers left in the inboxes
#    (`xgate inbox --ack` for each agency), waits STORE_SETTLE seconds (5)
#    for the store's background work (the integrator, sled's flusher), reads
#    the counters again, and sizes the data dir by part (`du -b`: the
#    files' lengths, allocated blocks beside them; the PKI and policy left
#    out);
# 5. unless STORE_COMPACT=0, stops the gateway and copies the data dir with
#    `BIN log compact`, whose fresh database holds only sled's live keys:
#    what sled keeps against what it must.
#
# Prints one JSON line per run (to STORE_OUT, default a new file in /tmp)
# and a summary: bytes written per exchange acknowledged, disk kept after
# the drain by part, and what an exchange must keep (its entry and tile
# hashes from the entry bundles and tiles, the envelope while it waits from
# the inbox body files and the kept bodies, its replay id; the first run
# of a build with the new layout gives the sizes to all).
#
# /proc/PID/io's write_bytes counts a page each time it turns dirty, the
# whole folio at once: on kernels that cache files in large folios (ext4
# since Linux 6.16) a small write into a folio already written back counts
# the folio, up to 2 MiB. The device's count is what reaches the disk, the
# file system's own journal included. A file system of its own, as root:
#
#   truncate -s 8G /work/xgstore.img && mkfs.ext4 -q -F /work/xgstore.img
#   dev=$(losetup --find --show --direct-io=on /work/xgstore.img)
#   mkdir -p /mnt/xgstore && mount "$dev" /mnt/xgstore
#   STORE_DIR=/mnt/xgstore tests/perf/store.sh 1000 60 BEFORE AFTER
set -euo pipefail
rate=${1:?usage: store.sh RATE SECS BIN [BIN...]}
secs=${2:?usage: store.sh RATE SECS BIN [BIN...]}
shift 2
[ $# -ge 1 ] || { echo "usage: store.sh RATE SECS BIN [BIN...]" >&2; exit 2; }
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done
bench_bin=${bins[-1]}
rounds=${ROUNDS:-1}
mix=${STORE_MIX:-record.send=8,medical.request=1,asset.register=1}
settle=${STORE_SETTLE:-5}
cd "$(dirname "$0")/../.."
. tests/perf/serve.sh
base=${STORE_DIR:-/tmp}
work=$(mktemp -d -p "$base" store.XXXXXX)
out=${STORE_OUT:-$(mktemp /tmp/store.XXXXXX.jsonl)}
trap 'rm -rf "$work"' EXIT
# The block device under the work dir, for its sectors-written count.
source_dev=$(findmnt -n -o SOURCE --target "$work" | sed 's|^/dev/||')
dev_stat=/sys/class/block/$source_dev/stat
[ -r "$dev_stat" ] || dev_stat=
dev_num=$([ -n "$dev_stat" ] && cat "/sys/class/block/$source_dev/dev" || true)

run() { # BIN: one measured run, one JSON line on stdout
  local bin=$1 dir
  dir=$(mktemp -d -p "$work")
  start_gateway "$bin" "$dir"
  local pid=$gateway_pid url=$gateway_url
  sleep 1 # let it settle after start (segments prepared, PKI written)
  BIN=$bin BENCH=$bench_bin PID=$pid URL=$url DIR=$dir RATE=$rate SECS=$secs MIX=$mix \
    SETTLE=$settle DEV_STAT=$dev_stat DEV_NUM=$dev_num TRACE=${STORE_TRACE:-1} COMPACT=${STORE_COMPACT:-1} python3 - <<'EOF'
import json, os, re, shutil, signal, subprocess, sys, time
e = os.environ
pid, d, data = int(e["PID"]), e["DIR"], e["DIR"] + "/data"
pki = data + "/pki"

def io():
    return {k: int(v) for k, v in (l.split(": ") for l in open(f"/proc/{pid}/io"))}
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def sectors():
    return int(open(e["DEV_STAT"]).read().split()[6]) if e["DEV_STAT"] else None

# The block layer's writes to the device, by the thread that issued them
# (an fdatasync writes back in the caller's thread; the kernel's flusher
# threads write what nobody synced).
trace = None
bio = f"/tmp/store-bio-{os.getpid()}.data"  # off the measured device
if e["DEV_NUM"] and e["TRACE"] != "0" and shutil.which("perf"):
    trace = subprocess.Popen(["perf", "record", "-q", "-a", "-e", "block:block_bio_queue", "-o", bio],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
io0, cpu0, sec0, t0 = io(), cpu(), sectors(), time.time()
args = [e["BENCH"], "bench", "--pki", pki, "--gateway", e["URL"], "--connections", "64",
        "--mix", e["MIX"], "--duration", e["SECS"], "--drain", "--json"]
if e["RATE"] != "max":
    args += ["--rate", e["RATE"], "--envelopes", str(int(e["RATE"]) * int(e["SECS"]) + 1000)]
else:
    args += ["--envelopes", str(7000 * int(e["SECS"]))]
p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
out = p.stdout.read()
_, status, ru = os.wait4(p.pid, 0)
bench = json.loads(out)
bench_cpu = ru.ru_utime + ru.ru_stime
cpu_load = cpu() - cpu0
# What the readers left: each agency's inbox, read and acknowledged page by page.
agencies = sorted(a for a in os.listdir(pki) if os.path.exists(f"{pki}/{a}/signing.jwk"))
left = 0
for a in agencies:
    r = subprocess.run([e["BENCH"], "inbox", "--pki", pki, "--as", a, "--gateway", e["URL"], "--ack"],
                       capture_output=True, text=True)
    left += sum(1 for l in r.stdout.splitlines() if l.startswith("{"))
time.sleep(int(e["SETTLE"]))
io1, cpu1, sec1 = io(), cpu(), sectors()
writers = None
if trace:
    trace.send_signal(signal.SIGINT)
    trace.wait()
    script = subprocess.run(["perf", "script", "-i", bio], capture_output=True, text=True).stdout
    os.remove(bio)
    writers = {}
    want = e["DEV_NUM"].replace(":", ",")
    for l in script.splitlines():
        m = re.search(r"^\s*(.+?)\s+\d+\s+\[\d+\].*block_bio_queue: (\d+,\d+) (\w+) \d+ \+ (\d+)", l)
        if m and m.group(2) == want and "W" in m.group(3):
            who = re.sub(r"[0-9:]+$", "", m.group(1)).rstrip("/-")
            writers[who] = writers.get(who, 0) + int(m.group(4)) * 512

# Sizes by part: (length, allocated) of every file under each part.
def part(rel):
    r = rel.split("/")
    if r[0] in ("pki", "policy.toml"):
        return None
    if r[0] == "log" and len(r) > 2 and r[1] == "tile":
        return "log entries" if r[2] == "entries" else "log tiles"
    if r[0] == "ledger" and len(r) > 1 and r[1] in ("journal", "bodies", "kept", "nodes"):
        return "ledger/" + r[1]
    if r[0] == "db":
        return "db (sled)"
    if r[0] == "tiles":
        return "tiles (copies)"
    return "other"
parts = {}
for root, dirs, files in os.walk(data):
    for f in files:
        path = os.path.join(root, f)
        k = part(os.path.relpath(path, data))
        if k is None:
            continue
        st = os.lstat(path)
        p_ = parts.setdefault(k, [0, 0, 0])
        p_[0] += st.st_size; p_[1] += st.st_blocks * 512; p_[2] += 1

# What an exchange must keep. Entries: the full bundles' bytes per entry
# (each entry with its 2-byte length); tiles: all tile bytes per entry.
size = None
for cp in (data + "/log/checkpoint", data + "/checkpoint"):
    if os.path.exists(cp):
        size = int(open(cp).read().splitlines()[1]); break
entries_dir = data + "/log/tile/entries"
full = [os.path.join(r, f) for r, _, fs in os.walk(entries_dir) for f in fs if ".p" not in r]
entry = sum(os.path.getsize(f) for f in full) / (256 * len(full)) if full else None
kinds = {k: v["count"] for k, v in bench["kinds"].items()}
def body_bytes(sub):
    dd = f"{data}/ledger/{sub}"
    if not os.path.isdir(dd):
        return None
    files = sorted(int(f.split(".")[0]) for f in os.listdir(dd) if f.endswith(".blb"))
    if not files:
        return None
    # Files fill one after another up to 4 MiB; the slack at each end is
    # at most one body.
    return files[-1] * (4 << 20) + os.path.getsize(f"{dd}/{files[-1]:020d}.blb")
inbox_body = body_bytes("bodies")
kept_body = parts.get("ledger/kept", [None])[0]
rec = {
    "bin": e["BIN"], "rate": e["RATE"], "secs": int(e["SECS"]), "mix": e["MIX"],
    "bench": {k: bench[k] for k in ("seconds", "ok", "per_second", "latency_ms", "errors", "drained", "kinds")},
    "left_in_inboxes": left, "log_size": size,
    "gateway_cpu_s": cpu_load, "bench_cpu_s": bench_cpu, "wall_s": bench["seconds"],
    "io": {k: io1[k] - io0[k] for k in io0},
    "device_bytes": None if sec0 is None else (sec1 - sec0) * 512,
    "device_bytes_by_thread": writers,
    "parts": parts,
    "entry_bytes": entry,
    "record_send_jws": inbox_body / kinds.get("record.send", 1) if inbox_body and kinds.get("record.send") else None,
    "kept_jws": kept_body / (kinds.get("medical.request", 0) + kinds.get("asset.register", 0))
                if kept_body and (kinds.get("medical.request", 0) + kinds.get("asset.register", 0)) else None,
}
# sled's live data: stop the gateway and copy the directory with a fresh
# database of the live keys only (`xgate log compact`).
if e["COMPACT"] != "0":
    os.kill(pid, signal.SIGTERM)
    while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.1)
    subprocess.run([e["BIN"], "log", "compact", "--data-dir", data, "--into", d + "/compact"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    rec["db_compacted"] = sum(os.path.getsize(os.path.join(r, f))
                              for r, _, fs in os.walk(d + "/compact/db") for f in fs)
print(json.dumps(rec))
EOF
  kill "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true
  rm -rf "$dir"
}

machine() {
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; device ${source_dev:-?} (${dev_stat:+counted}${dev_stat:-not counted})"
}
for round in $(seq "$rounds"); do
  for b in "${bins[@]}"; do
    echo "round $round: $b at $rate/s for $secs s; $(machine)" >&2
    run "$b" >> "$out"
  done
done

python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# The envelope sizes and entry size come from the runs that have the new
# layout's files (entry bundles, body files); they are the same envelopes.
def first(k):
    return next((r[k] for r in rows if r.get(k)), None)
entry, rec_jws, kept_jws = first("entry_bytes"), first("record_send_jws"), first("kept_jws")
replay = 50  # Gx: 2-byte prefix, u64 keep-until, sender, NUL, jti
for r in rows:
    n = r["bench"]["ok"]
    k = r["bench"]["kinds"]
    share_rec = k.get("record.send", {"count": 0})["count"] / n
    size = r["log_size"] or n
    tiles = r["parts"].get("log tiles", [0])[0] / size if "log tiles" in r["parts"] else 32 * 256 / 255
    env = share_rec * (rec_jws or 0) + (1 - share_rec) * (kept_jws or 0)
    must = (entry or 0) + tiles + env + replay
    cpu_per = r["gateway_cpu_s"] / n * 1e6
    print(f"\n{r['bin']}  {r['bench']['per_second']:.0f}/s for {r['wall_s']:.0f} s: {n} exchanges, "
          f"{r['bench']['drained'] + r['left_in_inboxes']} inbox envelopes acknowledged "
          f"({r['left_in_inboxes']} after the run), log size {r['log_size']}, "
          f"errors {sum(r['bench']['errors'].values())}, p99 {r['bench']['latency_ms']['p99']} ms")
    print(f"  gateway CPU {r['gateway_cpu_s']:.1f} s ({cpu_per:.0f} µs/exchange), "
          f"generator CPU {r['bench_cpu_s']:.1f} s ({r['bench_cpu_s'] / (r['gateway_cpu_s'] + r['bench_cpu_s']) * 100:.0f} % of both)")
    io = r["io"]
    dev = r["device_bytes"]
    print(f"  written per exchange: device {dev / n if dev is not None else float('nan'):,.0f} B, "
          f"write_bytes {io['write_bytes'] / n:,.0f} B (cancelled {io['cancelled_write_bytes'] / n:,.0f}), "
          f"wchar {io['wchar'] / n:,.0f} B (sockets included), rchar {io['rchar'] / n:,.0f} B")
    print(f"  must keep per exchange: entry {entry or 0:.0f} + tiles {tiles:.1f} + envelope {env:.0f} "
          f"(record.send {rec_jws or 0:.0f}, kept kinds {kept_jws or 0:.0f}) + replay id ~{replay} = {must:.0f} B; "
          f"device/must {dev / n / must if dev is not None else float('nan'):.2f}x")
    if r.get("device_bytes_by_thread"):
        w = r["device_bytes_by_thread"]
        print("  device bytes by the thread that issued them (per exchange): " +
              ", ".join(f"{k} {v / n:,.0f}" for k, v in sorted(w.items(), key=lambda x: -x[1])))
    total = sum(v[0] for v in r["parts"].values())
    if r.get("db_compacted") is not None:
        print(f"  db (sled) holding only its live keys (`xgate log compact`): {r['db_compacted']:,} bytes, "
              f"{r['db_compacted'] / n:,.0f} B/exchange")
    print(f"  {'disk after the drain':<22} {'bytes':>13} {'allocated':>13} {'files':>6} {'B/exchange':>11}")
    for name, (b, a, f) in sorted(r["parts"].items()):
        print(f"  {name:<22} {b:>13,} {a:>13,} {f:>6} {b / n:>11,.0f}")
    print(f"  {'total':<22} {total:>13,} {sum(v[1] for v in r['parts'].values()):>13,} "
          f"{sum(v[2] for v in r['parts'].values()):>6} {total / n:>11,.0f}")
EOF
echo "(JSON lines: $out)" >&2
