// The auditor's page's receipt check (gateway/web/tlog.js) under Node's WebCrypto:
// microseconds per verifyReceipt of the fixture receipt (tree of 300, nine
// proof hashes), beside one bare Ed25519 verify measured in the same run.
// Run: node tests/perf/web_verify.mjs
import { readFileSync } from "node:fs";
import * as tlog from "../../gateway/web/tlog.js";
const fixture = JSON.parse(readFileSync(new URL("../../gateway/web/testdata/fixture.json", import.meta.url), "utf8"));
const logKey = fixture.log_vkey;
const n = 2000;
for (let i = 0; i < 200; i++) await tlog.verifyReceipt(fixture.receipt, logKey);
let t = performance.now();
for (let i = 0; i < n; i++) await tlog.verifyReceipt(fixture.receipt, logKey);
const verify = (performance.now() - t) / n;
// Baseline in the same run: one Ed25519 verify through WebCrypto alone.
const key = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const msg = new Uint8Array(200); const sig = await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, msg);
for (let i = 0; i < 200; i++) await crypto.subtle.verify({ name: "Ed25519" }, key.publicKey, sig, msg);
t = performance.now();
for (let i = 0; i < n; i++) await crypto.subtle.verify({ name: "Ed25519" }, key.publicKey, sig, msg);
const ed = (performance.now() - t) / n;
const steps = await tlog.verifyReceipt(fixture.receipt, logKey);
console.log(JSON.stringify({ steps: steps.map(s => s.step + ":" + s.ok), receipt_verify_us: +(verify*1000).toFixed(1), ed25519_verify_us: +(ed*1000).toFixed(1), ratio: +(verify/ed).toFixed(2), tree_size: fixture.receipt.tree_size, proof_hashes: fixture.receipt.inclusion_proof.length }));
