#!/usr/bin/env bash
# Regenerates the fixtures of gateway/web/tlog.test.mjs with the real binary:
#
#   gateway/web/testdata/make-fixtures.sh [path/to/xgate]
#
# It builds a 300-entry log of gateway-style entries in a temporary data
# directory (checkpoints at sizes 100 and 300), has two witnesses started
# here (one Ed25519, one ML-DSA-44) cosign both checkpoints over loopback,
# and writes:
#
#   testdata/fixture.json  keys (public only), notes, roots, inclusion and
#                          consistency proofs from `xgate log`, two receipts
#                          that `xgate audit verify-receipt` accepted;
#   testdata/log/          the log's public tlog-tiles files at size 300.
#
# Private keys (the log's and the witnesses') stay in the temporary
# directory, which is deleted on exit. Only public material is written here.
set -euo pipefail

X=$(realpath "${1:-target/debug/xgate}")
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
PIDS=()
cleanup() {
  # Stop only the witnesses this script started, by their process ids.
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

D="$T/data"
ORIGIN=example.test/xgate-log

# Gateway-style entries (docs/ledger.md): canonical JSON whose `envelope`
# is a SHA-256 hex, one per line, for indices [from, to).
entries() {
  node --input-type=module -e '
    import { createHash } from "node:crypto";
    const [from, to] = process.argv.slice(1).map(Number);
    const hex = (s) => createHash("sha256").update(s).digest("hex");
    const policy = hex("policy v1");
    for (let i = from; i < to; i++) {
      const e = { aud: "treasury", decision: "allow", envelope: hex(`envelope ${i}`),
        iss: "state", jti: `jti-${i}`, kind: "record.send", policy, time: 1764259200 + i, v: 1 };
      process.stdout.write(JSON.stringify(e) + "\n");
    }' "$1" "$2"
}

entries 0 100 | "$X" log append --data-dir "$D" --origin "$ORIGIN" >/dev/null
"$X" log checkpoint --data-dir "$D" >"$T/cp100.note"
entries 100 300 | "$X" log append --data-dir "$D" >/dev/null
"$X" log checkpoint --data-dir "$D" >"$T/cp300.note"
"$X" log key --data-dir "$D" >"$T/log.vkey"
LOGKEY=$(cat "$T/log.vkey")

# Two witnesses on loopback, each cosigning size 100 then size 300.
start_witness() { # dir name alg
  "$X" witness init --dir "$T/$1" --name "$2" --alg "$3" | tail -n 1 >"$T/$1.vkey"
  "$X" witness serve --dir "$T/$1" --listen 127.0.0.1:0 --log "$LOGKEY" >"$T/$1.out" 2>"$T/$1.err" &
  PIDS+=($!)
}
start_witness w1 witness.example/w1 ed25519
start_witness pq witness.example/pq ml-dsa-44
addr() {
  for _ in $(seq 50); do
    grep -o '127\.0\.0\.1:[0-9]*' "$T/$1.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "witness $1 did not start" >&2
  exit 1
}
"$X" log consistency --data-dir "$D" --from 100 --to 300 >"$T/c100.json"
{ printf 'old 0\n\n'; cat "$T/cp100.note"; } >"$T/req100"
{
  printf 'old 100\n'
  node -e 'for (const h of JSON.parse(require("fs").readFileSync(process.argv[1])).hashes) console.log(h)' "$T/c100.json"
  printf '\n'
  cat "$T/cp300.note"
} >"$T/req300"
for w in w1 pq; do
  a=$(addr $w)
  for s in 100 300; do
    curl -sf -X POST --data-binary @"$T/req$s" "http://$a/add-checkpoint" >"$T/$w.$s.sig"
  done
done

# Proofs from the CLI, as JSON lines.
: >"$T/inclusion.jsonl"
for s in 1 2 3 5 7 8 100 255 256 257 299 300; do
  for i in 0 1 $((s / 2)) $((s - 2)) $((s - 1)); do
    if [ "$i" -ge 0 ] && [ "$i" -lt "$s" ]; then
      "$X" log inclusion --data-dir "$D" --index "$i" --size "$s" >>"$T/inclusion.jsonl"
    fi
  done
done
: >"$T/consistency.jsonl"
for pair in 1:1 1:2 1:300 2:3 2:300 3:5 3:300 4:8 7:8 64:300 100:300 128:300 255:256 256:257 256:300 257:300 299:300 300:300; do
  "$X" log consistency --data-dir "$D" --from "${pair%:*}" --to "${pair#*:}" >>"$T/consistency.jsonl"
done
for i in 0 150 299; do "$X" log entry --data-dir "$D" --index "$i"; done >"$T/entries.jsonl"
"$X" log inclusion --data-dir "$D" --index 150 --size 300 >"$T/receipt-proof.json"

# Assemble fixture.json and the receipts.
node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { createHash } from "node:crypto";
  const [T, OUT] = process.argv.slice(1);
  const read = (f) => readFileSync(`${T}/${f}`, "utf8");
  const lines = (f) => read(f).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const cosigned = (s) => read(`cp${s}.note`) + read(`w1.${s}.sig`) + read(`pq.${s}.sig`);
  const proof = JSON.parse(read("receipt-proof.json"));
  const entry = lines("entries.jsonl").find((e) => e.index === 150);
  const receipt = (checkpoint) => ({
    id: createHash("sha256").update("envelope 150").digest("hex"),
    log_index: 150, tree_size: 300, leaf_hash: proof.leaf_hash,
    inclusion_proof: proof.hashes, checkpoint, entry: entry.entry,
  });
  writeFileSync(`${T}/receipt.json`, JSON.stringify(receipt(read("cp300.note"))) + "\n");
  writeFileSync(`${T}/receipt-cosigned.json`, JSON.stringify(receipt(cosigned(300))) + "\n");
  const fixture = {
    comment: "Made by make-fixtures.sh with the xgate binary; public keys, notes and proofs only.",
    origin: read("log.vkey").trim().split("+")[0],
    log_vkey: read("log.vkey").trim(),
    witnesses: { ed25519: read("w1.vkey").trim(), ml_dsa_44: read("pq.vkey").trim() },
    checkpoints: { 100: read("cp100.note"), 300: read("cp300.note") },
    cosigned: { 100: cosigned(100), 300: cosigned(300) },
    cosignature_lines: {
      ed25519: { 100: read("w1.100.sig"), 300: read("w1.300.sig") },
      ml_dsa_44: { 100: read("pq.100.sig"), 300: read("pq.300.sig") },
    },
    inclusion: lines("inclusion.jsonl"),
    consistency: lines("consistency.jsonl"),
    entries: lines("entries.jsonl"),
    receipt: receipt(read("cp300.note")),
    receipt_cosigned: receipt(cosigned(300)),
  };
  writeFileSync(OUT, JSON.stringify(fixture, null, 1) + "\n");
' "$T" "$HERE/fixture.json"

# The receipts must pass the Rust verifier, witnesses and quorum included.
"$X" audit verify-receipt --receipt "$T/receipt.json" --key "$LOGKEY"
"$X" audit verify-receipt --receipt "$T/receipt-cosigned.json" --key "$LOGKEY" \
  --witness "$(cat "$T/w1.vkey")" --witness "$(cat "$T/pq.vkey")" --quorum 2

# The public tiles, bundles and checkpoint, as the log serves them.
rm -rf "$HERE/log"
cp -r "$D/log" "$HERE/log"
chmod -R u+w,a+r "$HERE/log"
echo "fixtures written to $HERE" >&2
