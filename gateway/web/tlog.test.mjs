// Tests of tlog.js: `node --test gateway/web/`.
//
// Known answers come from three places: the fixtures in testdata/ (made by
// testdata/make-fixtures.sh with the real `xgate` binary: its proofs, its
// signed checkpoints, its witnesses' cosignatures, its public tiles), the
// repository's published vectors (Go's and C2SP's signed-note examples in
// ledger/src/checkpoint.rs, torchwood's ML-DSA-44 note in
// ledger/src/cosign/testdata/, the path examples of ledger/src/tlog/path.rs),
// and reference implementations written here from RFC 9162 with node:crypto,
// independent of the module under test.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import * as tlog from "./tlog.js";

const { VerifyError } = tlog;
const here = new URL("./", import.meta.url);
const repo = new URL("../../", import.meta.url);
const fixture = JSON.parse(readFileSync(new URL("testdata/fixture.json", here), "utf8"));
const b64 = tlog.base64Decode;
const enc = (s) => new TextEncoder().encode(s);

/** Reads a file of the fixture log, as a static server would serve it. */
async function fixtureTile(path) {
  return new Uint8Array(readFileSync(new URL(`testdata/log/${path}`, here)));
}

/** Asserts that `promise` rejects with a VerifyError of `code` (or one of `code`). */
async function rejectsWith(promise, code, what = "") {
  const codes = Array.isArray(code) ? code : [code];
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof VerifyError, `${what}: expected a VerifyError, got ${e}`);
    assert.ok(codes.includes(e.code), `${what}: expected ${codes.join("|")}, got ${e.code}: ${e.message}`);
    assert.ok(e.message.length > 0);
    return true;
  });
}

function throwsWith(fn, code, what = "") {
  assert.throws(fn, (e) => e instanceof VerifyError && e.code === code, what);
}

/** A copy of `bytes` with byte `k` changed (one bit: the smallest change). */
function flipped(bytes, k) {
  const copy = Uint8Array.from(bytes);
  copy[k] ^= 0x01;
  return copy;
}

// --- Reference RFC 9162, from the RFC's definitions, with node:crypto. ---

const sha = (...parts) => new Uint8Array(createHash("sha256").update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest());
const refLeaf = (entry) => sha([0], entry);
const refNode = (l, r) => sha([1], l, r);
/** The largest power of two strictly below n (n > 1). */
const split = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};
/** MTH(D[n]) over leaf hashes, RFC 9162 2.1.1. */
function refRoot(leaves) {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return refNode(refRoot(leaves.slice(0, k)), refRoot(leaves.slice(k)));
}
/** PATH(m, D[n]), RFC 9162 2.1.3.1. */
function refPath(m, leaves) {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  return m < k
    ? [...refPath(m, leaves.slice(0, k)), refRoot(leaves.slice(k))]
    : [...refPath(m - k, leaves.slice(k)), refRoot(leaves.slice(0, k))];
}
/** SUBPROOF(m, D[n], b), RFC 9162 2.1.4.1. */
function refSubproof(m, leaves, b) {
  const n = leaves.length;
  if (m === n) return b ? [] : [refRoot(leaves)];
  const k = split(n);
  return m <= k
    ? [...refSubproof(m, leaves.slice(0, k), b), refRoot(leaves.slice(k))]
    : [...refSubproof(m - k, leaves.slice(k), false), refRoot(leaves.slice(0, k))];
}

// The fixture log's entries, from its public bundles.
const bundleEntries = [
  ...tlog.parseBundle(await fixtureTile("tile/entries/000")),
  ...tlog.parseBundle(await fixtureTile("tile/entries/001.p/44")),
];
const fixtureLeaves = bundleEntries.map(refLeaf);
const rootAt = (size) => refRoot(fixtureLeaves.slice(0, size));

// --- A test-only Ed25519 signer, to make notes the fixtures do not have. ---

async function newSigner(name, type) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  // The vkey written by hand from signed-note, not by the module.
  const id = sha(enc(name), [0x0a, type], pub).slice(0, 4);
  const vkey = `${name}+${Buffer.from(id).toString("hex")}+${Buffer.from([type, ...pub]).toString("base64")}`;
  const sign = async (msg) => new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, msg));
  const line = (blob) => `\u2014 ${name} ${Buffer.from([...id, ...blob]).toString("base64")}\n`;
  return {
    vkey,
    /** A signed note over `text` (type 0x01 keys). */
    async note(text) {
      return `${text}\n${line(await sign(enc(text)))}`;
    },
    /** A cosignature line over checkpoint `text` at `time` (type 0x04 keys). */
    async cosign(text, time) {
      const t = BigInt(time);
      const be = new Uint8Array(8);
      new DataView(be.buffer).setBigUint64(0, t);
      return line([...be, ...(await sign(enc(`cosignature/v1\ntime ${t}\n${text}`)))]);
    },
  };
}

// ===========================================================================

describe("RFC 9162 hashing", () => {
  test("leaf and node hashes are the RFC's, domain separated", async () => {
    // SHA-256 of the single byte 0x00: the well-known hash of the empty leaf.
    assert.equal(tlog.bytesToHex(await tlog.leafHash(new Uint8Array())), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    assert.deepEqual(tlog.emptyRoot(), sha());
    const a = await tlog.leafHash(enc("a"));
    const b = await tlog.leafHash(enc("b"));
    assert.deepEqual(a, refLeaf(enc("a")));
    assert.deepEqual(await tlog.nodeHash(a, b), refNode(a, b));
    assert.notDeepEqual(await tlog.nodeHash(a, b), await tlog.nodeHash(b, a));
    await rejectsWith(tlog.nodeHash(a, b.slice(1)), "bad-hash");
    // A caller cannot change the module's empty root through its copy.
    tlog.emptyRoot()[0] ^= 1;
    assert.deepEqual(tlog.emptyRoot(), sha());
  });

  test("the CLI's leaf hashes and roots are the reference's", async () => {
    for (const e of fixture.entries) {
      assert.deepEqual(await tlog.leafHash(b64(e.entry)), b64(e.leaf_hash), `entry ${e.index}`);
      assert.deepEqual(bundleEntries[e.index], b64(e.entry));
    }
    assert.equal(bundleEntries.length, 300);
    for (const p of fixture.inclusion) assert.deepEqual(rootAt(p.tree_size), b64(p.root_hash), `size ${p.tree_size}`);
    for (const size of [100, 300]) {
      assert.deepEqual(tlog.parseCheckpoint(tlog.parseNote(fixture.checkpoints[size]).body).root, rootAt(size));
    }
  });
});

describe("inclusion proofs (RFC 9162 2.1.3.2)", () => {
  const proofs = fixture.inclusion.map((p) => ({
    ...p,
    leaf: b64(p.leaf_hash),
    root: b64(p.root_hash),
    path: p.hashes.map((h) => b64(h)),
  }));

  test("every proof from `xgate log inclusion` verifies", async () => {
    assert.ok(proofs.length >= 40);
    for (const p of proofs) {
      assert.equal(await tlog.verifyInclusion(p.leaf, p.leaf_index, p.tree_size, p.path, p.root), true);
      // BigInt arguments too.
      assert.equal(await tlog.verifyInclusion(p.leaf, BigInt(p.leaf_index), BigInt(p.tree_size), p.path, p.root), true);
    }
  });

  test("every single-byte change in a proof hash, the leaf or the root is rejected", async () => {
    for (const p of proofs.filter((q) => q.tree_size >= 255)) {
      const what = `index ${p.leaf_index} size ${p.tree_size}`;
      for (let h = 0; h < p.path.length; h++) {
        for (let k = 0; k < 32; k++) {
          const path = p.path.map((x, j) => (j === h ? flipped(x, k) : x));
          await rejectsWith(tlog.verifyInclusion(p.leaf, p.leaf_index, p.tree_size, path, p.root), "root-mismatch", `${what} hash ${h} byte ${k}`);
        }
      }
      for (let k = 0; k < 32; k++) {
        await rejectsWith(tlog.verifyInclusion(flipped(p.leaf, k), p.leaf_index, p.tree_size, p.path, p.root), "root-mismatch", `${what} leaf byte ${k}`);
        await rejectsWith(tlog.verifyInclusion(p.leaf, p.leaf_index, p.tree_size, p.path, flipped(p.root, k)), "root-mismatch", `${what} root byte ${k}`);
      }
    }
  });

  test("another index, another size, a proof too long or too short is rejected", async () => {
    for (const p of proofs) {
      const { leaf, leaf_index: i, tree_size: n, path, root } = p;
      const what = `index ${i} size ${n}`;
      for (const j of [i - 1, i + 1]) {
        if (j >= 0 && j < n) await rejectsWith(tlog.verifyInclusion(leaf, j, n, path, root), ["root-mismatch", "wrong-proof-length"], `${what} as ${j}`);
      }
      // Another size is refused whenever it changes the path's shape. (When
      // it does not, e.g. index 0 of 7 or of 6, the RFC algorithm cannot
      // tell: the signed checkpoint binds the size, and verifyReceipt
      // checks tree_size against it before the proof.)
      for (const m of [n - 1, n + 1, 2 * n, n + 13]) {
        if (m <= i || m > 300) continue;
        const expected = refPath(i, fixtureLeaves.slice(0, m)).length;
        if (expected !== path.length) await rejectsWith(tlog.verifyInclusion(leaf, i, m, path, root), "wrong-proof-length", `${what} as size ${m}`);
        else if (m !== n) await rejectsWith(tlog.verifyInclusion(leaf, i, m, refPath(i, fixtureLeaves.slice(0, m)), root), "root-mismatch", `${what} as size ${m}`);
      }
      await rejectsWith(tlog.verifyInclusion(leaf, i, n, [...path, root], root), "wrong-proof-length", `${what} one more`);
      if (path.length > 0) await rejectsWith(tlog.verifyInclusion(leaf, i, n, path.slice(0, -1), root), "wrong-proof-length", `${what} one less`);
    }
  });

  test("malformed input is refused, never accepted", async () => {
    const p = proofs.find((q) => q.tree_size === 300 && q.leaf_index === 150);
    await rejectsWith(tlog.verifyInclusion(p.leaf, 300, 300, p.path, p.root), "out-of-range");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 0, 0, [], tlog.emptyRoot()), "out-of-range");
    await rejectsWith(tlog.verifyInclusion(p.leaf, -1, 300, p.path, p.root), "out-of-range");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 1.5, 300, p.path, p.root), "out-of-range");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 2 ** 53, 2 ** 60, p.path, p.root), "out-of-range", "unsafe Number");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 0n, 1n << 64n, p.path, p.root), "out-of-range");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 150, 300, [p.path[0].slice(1), ...p.path.slice(1)], p.root), "bad-hash");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 150, 300, p.path, p.root.slice(0, 31)), "bad-hash");
    await rejectsWith(tlog.verifyInclusion(p.leaf, 150, 300, Array(65).fill(p.root), p.root), "wrong-proof-length");
    // Size 1: the leaf is the root and the proof is empty.
    const one = proofs.find((q) => q.tree_size === 1);
    assert.equal(await tlog.verifyInclusion(one.leaf, 0, 1, [], one.leaf), true);
    await rejectsWith(tlog.verifyInclusion(one.leaf, 0, 1, [one.leaf], one.leaf), "wrong-proof-length");
  });

  test("agrees with the reference PATH for every index of trees up to 40", async () => {
    for (let n = 1; n <= 40; n++) {
      const leaves = fixtureLeaves.slice(0, n);
      const root = refRoot(leaves);
      for (let m = 0; m < n; m++) {
        assert.equal(await tlog.verifyInclusion(leaves[m], m, n, refPath(m, leaves), root), true, `${m} in ${n}`);
      }
    }
  });
});

describe("consistency proofs (RFC 9162 2.1.4.2)", () => {
  const proofs = fixture.consistency.map((p) => ({
    ...p,
    oldRoot: b64(p.old_root),
    newRoot: b64(p.new_root),
    path: p.hashes.map((h) => b64(h)),
  }));

  test("every proof from `xgate log consistency` verifies", async () => {
    assert.ok(proofs.length >= 15);
    for (const p of proofs) {
      assert.deepEqual(p.oldRoot, rootAt(p.from));
      assert.equal(await tlog.verifyConsistency(p.from, p.to, p.path, p.oldRoot, p.newRoot), true, `${p.from} to ${p.to}`);
    }
  });

  test("every single-byte change in a proof hash or either root is rejected", async () => {
    for (const p of proofs) {
      const what = `${p.from} to ${p.to}`;
      for (let h = 0; h < p.path.length; h++) {
        for (let k = 0; k < 32; k++) {
          const path = p.path.map((x, j) => (j === h ? flipped(x, k) : x));
          await rejectsWith(tlog.verifyConsistency(p.from, p.to, path, p.oldRoot, p.newRoot), "root-mismatch", `${what} hash ${h} byte ${k}`);
        }
      }
      for (let k = 0; k < 32; k++) {
        await rejectsWith(tlog.verifyConsistency(p.from, p.to, p.path, flipped(p.oldRoot, k), p.newRoot), "root-mismatch", `${what} old root byte ${k}`);
        await rejectsWith(tlog.verifyConsistency(p.from, p.to, p.path, p.oldRoot, flipped(p.newRoot, k)), "root-mismatch", `${what} new root byte ${k}`);
      }
    }
  });

  test("proofs of the wrong length, reversed sizes, swapped roots are rejected", async () => {
    for (const p of proofs) {
      const what = `${p.from} to ${p.to}`;
      await rejectsWith(tlog.verifyConsistency(p.from, p.to, [...p.path, p.oldRoot], p.oldRoot, p.newRoot), "wrong-proof-length", `${what} one more`);
      if (p.path.length > 0) await rejectsWith(tlog.verifyConsistency(p.from, p.to, p.path.slice(0, -1), p.oldRoot, p.newRoot), ["wrong-proof-length", "root-mismatch"], `${what} one less`);
      if (p.from !== p.to) {
        await rejectsWith(tlog.verifyConsistency(p.to, p.from, p.path, p.newRoot, p.oldRoot), "out-of-range", what);
        await rejectsWith(tlog.verifyConsistency(p.from, p.to, p.path, p.newRoot, p.oldRoot), "root-mismatch", `${what} swapped`);
        await rejectsWith(tlog.verifyConsistency(p.from, p.to, [], p.oldRoot, p.newRoot), "wrong-proof-length", `${what} empty`);
      }
    }
    const r300 = rootAt(300);
    assert.equal(await tlog.verifyConsistency(300, 300, [], r300, r300), true);
    await rejectsWith(tlog.verifyConsistency(300, 300, [r300], r300, r300), "wrong-proof-length");
    await rejectsWith(tlog.verifyConsistency(299, 299, [], rootAt(299), r300), "root-mismatch");
    // The empty tree is a prefix of every tree, with its own root only.
    assert.equal(await tlog.verifyConsistency(0, 300, [], tlog.emptyRoot(), r300), true);
    await rejectsWith(tlog.verifyConsistency(0, 300, [], r300, r300), "root-mismatch");
    await rejectsWith(tlog.verifyConsistency(0, 300, [r300], tlog.emptyRoot(), r300), "wrong-proof-length");
  });

  test("agrees with the reference SUBPROOF for every pair of sizes up to 40", async () => {
    for (let n = 1; n <= 40; n++) {
      const leaves = fixtureLeaves.slice(0, n);
      for (let m = 1; m <= n; m++) {
        const proof = refSubproof(m, leaves, true);
        assert.equal(await tlog.verifyConsistency(m, n, proof, refRoot(leaves.slice(0, m)), refRoot(leaves)), true, `${m} to ${n}`);
      }
    }
  });
});

describe("C2SP signed-note", () => {
  // The example key and note of Go's golang.org/x/mod/sumdb/note (as in
  // ledger/src/checkpoint.rs), and the C2SP signed-note spec's example.
  const GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
  const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
  const GO_SIG = "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
  const SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
  const SPEC_NOTE = "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

  test("opens the Go reference note and the C2SP spec example", async () => {
    assert.equal(await tlog.openNote(`${GO_TEXT}\n${GO_SIG}`, GO_VKEY), GO_TEXT);
    assert.equal(await tlog.openNote(SPEC_NOTE, SPEC_VKEY), "This is an example message.\n");
    // Valid signatures, but not checkpoints.
    await rejectsWith(tlog.verifyNote(SPEC_NOTE, SPEC_VKEY), "malformed-checkpoint");
    await rejectsWith(tlog.openNote(`${GO_TEXT.replace("problem,", "problem;")}\n${GO_SIG}`, GO_VKEY), "bad-signature");
    await rejectsWith(tlog.openNote(`${GO_TEXT}\n\u2014 someone AAAAAAAAAA==\n`, GO_VKEY), "no-signature");
    await rejectsWith(tlog.openNote(SPEC_NOTE, GO_VKEY), "no-signature");
  });

  test("parseNote splits at the last blank line", () => {
    const parsed = tlog.parseNote("a\n\nb\n\n\u2014 k AQIDBAU=\n\u2014 j AQIDBAUG\n");
    assert.equal(parsed.body, "a\n\nb\n");
    assert.equal(parsed.signatures.length, 2);
    assert.equal(parsed.signatures[0].name, "k");
    assert.deepEqual(parsed.signatures[0].keyHash, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual(parsed.signatures[0].sig, Uint8Array.of(5));
    assert.equal(parsed.signatures[1].line, "\u2014 j AQIDBAUG");
    // Bytes in, the same out.
    assert.deepEqual(tlog.parseNote(enc(SPEC_NOTE)).body, "This is an example message.\n");
  });

  test("parseNote refuses every malformed frame", () => {
    for (const note of [
      "text\n", // no blank line
      "text\n\n", // no signature
      "text\n\n\u2014 k AQIDBAU=", // no final newline
      "text\n\n- k AQIDBAU=\n", // not an em dash
      "text\n\n\u2014 k\n", // no signature
      "text\n\n\u2014  AQIDBAU=\n", // empty name
      "text\n\n\u2014 k+1 AQIDBAU=\n", // plus in the name
      "text\n\n\u2014 k AQIDBA==\n", // 4 bytes: no signature
      "text\n\n\u2014 k AQID!AU=\n", // not base64
      "text\n\n\u2014 k AQIDBAV=\n", // non-canonical base64
      "text\n\n\u2014 k AQIDBAU\n", // unpadded base64
      "te\rxt\n\n\u2014 k AQIDBAU=\n", // control character
      "text\n\n\u2014 k AQIDBAU=\n\n", // blank line after
      "text\n\n\u2014 k AQIDBAU=\ntrailer\n", // trailing text
      "te\ud800xt\n\n\u2014 k AQIDBAU=\n", // lone surrogate
    ]) {
      throwsWith(() => tlog.parseNote(note), "malformed-note", JSON.stringify(note));
    }
    throwsWith(() => tlog.parseNote(Uint8Array.of(0x74, 0xff, 0x0a, 0x0a)), "malformed-note", "not UTF-8");
    const line = "\u2014 k AQIDBAU=\n";
    assert.equal(tlog.parseNote(`t\n\n${line.repeat(100)}`).signatures.length, 100);
    throwsWith(() => tlog.parseNote(`t\n\n${line.repeat(101)}`), "malformed-note");
  });

  test("verifier keys: types 0x01, 0x04, 0x06 parse; their key hash is checked", async () => {
    const log = await tlog.parseVerifierKey(fixture.log_vkey);
    assert.equal(log.name, fixture.origin);
    assert.equal(log.type, 0x01);
    assert.equal(log.key.length, 32);
    const w = await tlog.parseVerifierKey(fixture.witnesses.ed25519);
    assert.equal(w.type, 0x04);
    assert.equal(w.alg, "cosignature/v1");
    const pq = await tlog.parseVerifierKey(fixture.witnesses.ml_dsa_44);
    assert.equal(pq.type, 0x06);
    assert.equal(pq.key.length, 1312);
    assert.equal(pq.supported, false);
    // torchwood's ML-DSA-44 key, from the repository's test data.
    const torchwood = readFileSync(new URL("ledger/src/cosign/testdata/torchwood_mldsa.vkey", repo), "utf8");
    const t = await tlog.parseVerifierKey(torchwood);
    assert.equal(t.name, "example.com/mldsa-log");
    assert.equal(tlog.bytesToHex(t.keyHash), "b5df45c5");
    assert.equal(t.vkey, torchwood.trimEnd());
    assert.equal(tlog.bytesToHex((await tlog.parseVerifierKey(GO_VKEY)).keyHash), "c74f20a3");
  });

  test("a wrong key hash, another name or a malformed key is refused", async () => {
    for (const vkey of [fixture.log_vkey, fixture.witnesses.ed25519, fixture.witnesses.ml_dsa_44, GO_VKEY]) {
      const [name, id, key] = [vkey.slice(0, vkey.indexOf("+")), vkey.split("+")[1], vkey.split("+").slice(2).join("+")];
      for (let k = 0; k < 8; k++) {
        const other = id.slice(0, k) + ((parseInt(id[k], 16) + 1) % 16).toString(16) + id.slice(k + 1);
        await rejectsWith(tlog.parseVerifierKey(`${name}+${other}+${key}`), "key-hash-mismatch", `digit ${k} of ${name}`);
      }
      await rejectsWith(tlog.parseVerifierKey(`${name}x+${id}+${key}`), "key-hash-mismatch", `renamed ${name}`);
      // The same key material under another type.
      const material = b64(key);
      for (const type of [0x01, 0x04]) {
        if (type === material[0] || material.length !== 33) continue;
        const retyped = tlog.base64Encode(Uint8Array.of(type, ...material.slice(1)));
        await rejectsWith(tlog.parseVerifierKey(`${name}+${id}+${retyped}`), "key-hash-mismatch", `retyped ${name}`);
      }
    }
    for (const bad of [
      "",
      "name",
      "name+deadbeef",
      "name+DEADBEEF+AQ==",
      "name+deadbee+AQ==",
      "name+deadbeef+!!",
      "name+deadbeef+",
      "+deadbeef+AQ==",
      "na me+deadbeef+AQ==",
      "name+deadbeef+AQID", // type 0x01, 2 bytes of key
      "name+deadbeef+BAk=", // type 0x04, 1 byte of key
    ]) {
      await rejectsWith(tlog.parseVerifierKey(bad), "malformed-key", JSON.stringify(bad));
    }
    await rejectsWith(tlog.parseVerifierKey(`name+deadbeef+${tlog.base64Encode(new Uint8Array(33).fill(2))}`), "unsupported-key-type");
  });

  test("the fixture checkpoints verify with the log's key", async () => {
    for (const size of [100, 300]) {
      const cp = await tlog.verifyNote(fixture.checkpoints[size], fixture.log_vkey);
      assert.equal(cp.origin, fixture.origin);
      assert.equal(cp.size, BigInt(size));
      assert.deepEqual(cp.root, rootAt(size));
      assert.deepEqual(cp.extensions, []);
      // Cosignature lines of other keys are ignored.
      assert.equal((await tlog.verifyNote(fixture.cosigned[size], fixture.log_vkey)).size, BigInt(size));
    }
    // The checkpoint the log serves is the latest one.
    assert.equal(new TextDecoder().decode(await fixtureTile("checkpoint")), fixture.checkpoints[300]);
  });

  test("every single-byte change of a signed checkpoint is rejected", async () => {
    const note = enc(fixture.checkpoints[300]);
    for (let k = 0; k < note.length; k++) {
      await rejectsWith(tlog.verifyNote(flipped(note, k), fixture.log_vkey), ["malformed-note", "bad-signature", "no-signature", "malformed-checkpoint"], `byte ${k}`);
    }
    // In the body, every change is a bad signature (or not a checkpoint any more).
    const body = tlog.parseNote(fixture.checkpoints[300]).body;
    const bodyBytes = enc(body);
    for (let k = 0; k < bodyBytes.length; k++) {
      const text = new TextDecoder().decode(flipped(bodyBytes, k)) + fixture.checkpoints[300].slice(body.length);
      await rejectsWith(tlog.verifyNote(text, fixture.log_vkey), ["bad-signature", "malformed-note"], `body byte ${k}`);
    }
    // In the signature: the key hash (the line is then another key's) or the signature proper.
    const [line] = tlog.parseNote(fixture.checkpoints[300]).signatures;
    const blob = Uint8Array.of(...line.keyHash, ...line.sig);
    for (let k = 0; k < blob.length; k++) {
      const text = `${body}\n\u2014 ${line.name} ${tlog.base64Encode(flipped(blob, k))}\n`;
      await rejectsWith(tlog.verifyNote(text, fixture.log_vkey), k < 4 ? "no-signature" : "bad-signature", `signature byte ${k}`);
    }
    // Truncated and extended signatures.
    for (const sig of [line.sig.slice(0, 63), Uint8Array.of(...line.sig, 0)]) {
      const text = `${body}\n\u2014 ${line.name} ${tlog.base64Encode(Uint8Array.of(...line.keyHash, ...sig))}\n`;
      await rejectsWith(tlog.verifyNote(text, fixture.log_vkey), "bad-signature");
    }
  });

  test("wrong keys, wrong origins and extension lines", async () => {
    // A witness key is not a log key.
    await rejectsWith(tlog.verifyNote(fixture.checkpoints[300], fixture.witnesses.ed25519), "wrong-key-type");
    // Another key of the same name: no signature from it.
    const impostor = await newSigner(fixture.origin, 0x01);
    await rejectsWith(tlog.verifyNote(fixture.checkpoints[300], impostor.vkey), "no-signature");
    // A good signature on a checkpoint of another log.
    const root = tlog.base64Encode(rootAt(5));
    const other = await newSigner("other.example/log", 0x01);
    await rejectsWith(tlog.verifyNote(await other.note(`${fixture.origin}\n5\n${root}\n`), other.vkey), "wrong-origin");
    // Extension lines are signed and returned.
    const ext = await other.note(`other.example/log\n5\n${root}\nfirst extension\nsecond\n`);
    const cp = await tlog.verifyNote(ext, other.vkey);
    assert.deepEqual(cp.extensions, ["first extension", "second"]);
    assert.equal(cp.size, 5n);
    // A second line from the same key that does not verify refuses the note.
    const [good] = tlog.parseNote(ext).signatures;
    const bad = Uint8Array.of(...good.keyHash, ...flipped(good.sig, 10));
    await rejectsWith(tlog.verifyNote(`${ext}\u2014 other.example/log ${tlog.base64Encode(bad)}\n`, other.vkey), "bad-signature");
  });
});

describe("C2SP tlog-checkpoint bodies", () => {
  const root = tlog.base64Encode(new Uint8Array(32));

  test("sizes must be canonical decimals below 2^64", () => {
    for (const size of ["042", "00", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.0", "", "18446744073709551616", "99999999999999999999", "\u0661\u0662", "\uff11"]) {
      throwsWith(() => tlog.parseCheckpoint(`origin\n${size}\n${root}\n`), "malformed-checkpoint", JSON.stringify(size));
    }
    assert.equal(tlog.parseCheckpoint(`origin\n0\n${root}\n`).size, 0n);
    assert.equal(tlog.parseCheckpoint(`origin\n18446744073709551615\n${root}\n`).size, (1n << 64n) - 1n);
    assert.equal(tlog.parseCheckpoint(`origin\n20852163\n${root}\n`).size, 20852163n);
  });

  test("other malformed bodies are refused", () => {
    for (const body of [
      `\n1\n${root}\n`,
      "origin\n1\nAAAA\n",
      `origin\n1\n${root}`,
      `origin\n1\n${root}\n\n`,
      `origin\n1\n${root}\next\n\n`,
      "origin\n1\n",
      "origin\n",
      `origin\n1\n${root.slice(0, -1)}\n`,
      `origin\n1\n${tlog.base64Encode(new Uint8Array(33))}\n`,
    ]) {
      throwsWith(() => tlog.parseCheckpoint(body), "malformed-checkpoint", JSON.stringify(body));
    }
    assert.deepEqual(tlog.parseCheckpoint(`origin\n1\n${root}\nextension line\n`).extensions, ["extension line"]);
  });
});

describe("C2SP tlog-cosignature", () => {
  test("the fixture witness's Ed25519 cosignatures verify, with their time", async () => {
    const times = [];
    for (const size of [100, 300]) {
      const { time } = await tlog.verifyCosignature(fixture.cosigned[size], fixture.witnesses.ed25519);
      assert.equal(typeof time, "bigint");
      assert.ok(time > 1_700_000_000n, `time ${time}`);
      // The time is the one in the line.
      const line = tlog.parseSignatureLine(fixture.cosignature_lines.ed25519[size].trimEnd());
      assert.equal(tlog.splitCosignature(line.sig).time, time);
      times.push(time);
    }
    assert.ok(times[0] <= times[1]);
    // A cosignature of size 300 attached to the checkpoint of size 100.
    const swapped = fixture.checkpoints[100] + fixture.cosignature_lines.ed25519[300];
    await rejectsWith(tlog.verifyCosignature(swapped, fixture.witnesses.ed25519), "bad-cosignature");
  });

  test("ML-DSA-44 cosignatures are reported unsupported, not accepted or refused", async () => {
    assert.deepEqual(await tlog.verifyCosignature(fixture.cosigned[300], fixture.witnesses.ml_dsa_44), { unsupported: true, alg: "ml-dsa-44" });
    // torchwood's ML-DSA-44 signed note from the repository's test data.
    const vkey = readFileSync(new URL("ledger/src/cosign/testdata/torchwood_mldsa.vkey", repo), "utf8");
    const note = readFileSync(new URL("ledger/src/cosign/testdata/torchwood_mldsa.note", repo), "utf8");
    assert.deepEqual(await tlog.verifyCosignature(note, vkey), { unsupported: true, alg: "ml-dsa-44" });
    const [line] = tlog.parseNote(note).signatures;
    assert.equal(line.sig.length, 8 + 2420);
    assert.equal(tlog.splitCosignature(line.sig).time, 0n);
    // Absent is absent, whatever the type; a short one is refused.
    await rejectsWith(tlog.verifyCosignature(fixture.checkpoints[300], fixture.witnesses.ml_dsa_44), "no-signature");
    const short = `${line.line.slice(0, -8)}\n`;
    await rejectsWith(tlog.verifyCosignature(`${tlog.parseNote(note).body}\n${short}`, vkey), ["bad-cosignature", "malformed-note"]);
  });

  test("every single-byte change of an Ed25519 cosignature or of the body is rejected", async () => {
    const note = fixture.checkpoints[300];
    const body = tlog.parseNote(note).body;
    const line = tlog.parseSignatureLine(fixture.cosignature_lines.ed25519[300].trimEnd());
    const blob = Uint8Array.of(...line.keyHash, ...line.sig);
    assert.equal(blob.length, 4 + 8 + 64);
    for (let k = 0; k < blob.length; k++) {
      const text = `${note}\u2014 ${line.name} ${tlog.base64Encode(flipped(blob, k))}\n`;
      // Bytes 0-3 are the key hash: the line is then another key's.
      await rejectsWith(tlog.verifyCosignature(text, fixture.witnesses.ed25519), k < 4 ? "no-signature" : "bad-cosignature", `byte ${k}`);
    }
    const bodyBytes = enc(body);
    for (let k = 0; k < bodyBytes.length; k++) {
      const text = new TextDecoder().decode(flipped(bodyBytes, k)) + fixture.cosigned[300].slice(body.length);
      await rejectsWith(tlog.verifyCosignature(text, fixture.witnesses.ed25519), ["bad-cosignature", "malformed-note", "malformed-checkpoint"], `body byte ${k}`);
    }
  });

  test("cosignatures made from the spec's message verify; time and type are checked", async () => {
    const w = await newSigner("witness.example/test", 0x04);
    const text = `example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n`;
    const log = await newSigner("example.com/behind-the-sofa", 0x01);
    const note = await log.note(text);
    assert.deepEqual(await tlog.verifyCosignature(note + (await w.cosign(text, 1679315147)), w.vkey), { time: 1679315147n });
    assert.deepEqual(await tlog.verifyCosignature(note + (await w.cosign(text, 0)), w.vkey), { time: 0n });
    // Two lines from one witness: the earliest time.
    const both = note + (await w.cosign(text, 300)) + (await w.cosign(text, 200));
    assert.deepEqual(await tlog.verifyCosignature(both, w.vkey), { time: 200n });
    // Extension lines are covered.
    const ext = `${text}extension\n`;
    const extNote = (await log.note(ext)) + (await w.cosign(ext, 5));
    assert.deepEqual(await tlog.verifyCosignature(extNote, w.vkey), { time: 5n });
    await rejectsWith(tlog.verifyCosignature((await log.note(text)) + (await w.cosign(ext, 5)), w.vkey), "bad-cosignature");
    // A timestamp above 2^63 - 1 is refused as such.
    await rejectsWith(tlog.verifyCosignature(note + (await w.cosign(text, 1n << 63n)), w.vkey), "bad-timestamp");
    // Keys of the wrong type.
    await rejectsWith(tlog.verifyCosignature(note, log.vkey), "wrong-key-type");
    await rejectsWith(tlog.verifyCosignature(fixture.cosigned[300], fixture.log_vkey), "wrong-key-type");
    // Only checkpoints are cosigned.
    const notCheckpoint = (await log.note("hello\n")) + (await w.cosign("hello\n", 1));
    await rejectsWith(tlog.verifyCosignature(notCheckpoint, w.vkey), "malformed-checkpoint");
    // The message, byte for byte.
    assert.equal(new TextDecoder().decode(tlog.cosignatureMessage(1679315147, text)), `cosignature/v1\ntime 1679315147\n${text}`);
  });

  test("the spec example line's timestamp", () => {
    const line = tlog.parseSignatureLine("\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==");
    assert.equal(line.sig.length, 8 + 64);
    assert.equal(tlog.splitCosignature(line.sig).time, 1679315147n);
  });
});

describe("C2SP tlog-tiles", () => {
  test("paths are spelled as ledger/src/tlog/path.rs spells them", () => {
    assert.equal(tlog.tilePath(0, 0), "tile/0/000");
    assert.equal(tlog.tilePath(0, 999), "tile/0/999");
    assert.equal(tlog.tilePath(0, 1000), "tile/0/x001/000");
    assert.equal(tlog.tilePath(0, 1234067), "tile/0/x001/x234/067");
    assert.equal(tlog.tilePath(0, (1n << 64n) - 1n), "tile/0/x018/x446/x744/x073/x709/x551/615");
    assert.equal(tlog.tilePath(0, 1234067, 3), "tile/0/x001/x234/067.p/3");
    assert.equal(tlog.tilePath(63, 5, 1), "tile/63/005.p/1");
    assert.equal(tlog.tilePath(1, 0, 255), "tile/1/000.p/255");
    assert.equal(tlog.tilePath(1, 0, 256), "tile/1/000");
    assert.equal(tlog.tilePath("entries", 1234067), "tile/entries/x001/x234/067");
    assert.equal(tlog.entriesPath(1234067, 3), "tile/entries/x001/x234/067.p/3");
    assert.equal(tlog.entriesPath(0, 255), "tile/entries/000.p/255");
    for (const [level, index, width] of [[64, 0, 256], [-1, 0, 256], [0, -1, 256], [0, 1n << 64n, 256], [0, 0, 0], [0, 0, 257], [0, 0, 1.5], ["x", 0, 256]]) {
      throwsWith(() => tlog.tilePath(level, index, width), "out-of-range", `${level}/${index}/${width}`);
    }
  });

  test("partial widths and the tiles a size is read from", () => {
    // The spec's example: size 70,000.
    assert.deepEqual([0, 1, 2, 3].map((l) => tlog.partialWidth(70000, l)), [112, 17, 1, 0]);
    assert.deepEqual([0, 1].map((l) => tlog.partialWidth(256, l)), [0, 1]);
    assert.equal(tlog.partialWidth((1n << 64n) - 1n, 7), 255);
    assert.equal(tlog.partialWidth((1n << 64n) - 1n, 8), 0);
    // Size 10^7, worked out in path.rs.
    const size = 10_000_000;
    assert.equal(tlog.tilePathForSize(0, Math.floor(size / 256) - 1, size), "tile/0/x039/061");
    assert.equal(tlog.tilePathForSize(0, Math.floor(size / 256), size), "tile/0/x039/062.p/128");
    assert.equal(tlog.tilePathForSize(1, Math.floor(size / 65536), size), "tile/1/152.p/150");
    assert.equal(tlog.tilePathForSize(2, 0, size), "tile/2/000.p/152");
    // The fixture log, size 300.
    assert.equal(tlog.tilePathForSize(0, 0, 300), "tile/0/000");
    assert.equal(tlog.tilePathForSize(0, 1, 300), "tile/0/001.p/44");
    assert.equal(tlog.tilePathForSize(1, 0, 300), "tile/1/000.p/1");
    assert.equal(tlog.tilePathForSize("entries", 1, 300), "tile/entries/001.p/44");
    // A tree that ends exactly at a tile's end reads it full.
    assert.equal(tlog.tilePathForSize(0, 0, 256), "tile/0/000");
    assert.equal(tlog.tilePathForSize(0, 0, 255), "tile/0/000.p/255");
    assert.equal(tlog.tilePathForSize(1, 0, 65536), "tile/1/000");
    assert.equal(tlog.tilePathForSize(1, 0, 65535), "tile/1/000.p/255");
    assert.equal(tlog.tilePathForSize("entries", 1, 512), "tile/entries/001");
    throwsWith(() => tlog.tilePathForSize(0, 2, 300), "out-of-range");
    throwsWith(() => tlog.tilePathForSize(2, 0, 300), "out-of-range");
    throwsWith(() => tlog.tilePathForSize(0, 1, 256), "out-of-range");
  });

  test("entry bundles: big-endian lengths, nothing else", async () => {
    const bundle = Uint8Array.of(0, 2, 0x61, 0x62, 0, 0, 1, 2, ...new Uint8Array(258).fill(7));
    const entries = tlog.parseBundle(bundle);
    assert.deepEqual(entries.map((e) => e.length), [2, 0, 258]);
    assert.deepEqual(entries[0], enc("ab"));
    assert.deepEqual(tlog.parseBundle(new Uint8Array()), []);
    const longest = Uint8Array.of(0xff, 0xff, ...new Uint8Array(65535).fill(0xa5));
    assert.equal(tlog.parseBundle(longest)[0].length, 65535);
    // Cut at every offset but the entry boundaries.
    const two = Uint8Array.of(0, 3, 1, 2, 3, 0, 2, 4, 5);
    for (let cut = 0; cut <= two.length; cut++) {
      if ([0, 5, 9].includes(cut)) assert.ok(tlog.parseBundle(two.slice(0, cut)));
      else throwsWith(() => tlog.parseBundle(two.slice(0, cut)), "malformed-bundle", `cut at ${cut}`);
    }
    assert.throws(() => tlog.parseBundle(Uint8Array.of(...two, 0)), (e) => e.code === "malformed-bundle" && /entry 2: length prefix cut short/.test(e.message));
    assert.throws(() => tlog.parseBundle(Uint8Array.of(0, 4, 1, 2, 3)), (e) => e.code === "malformed-bundle" && /entry 0: 4 bytes run past the end/.test(e.message));
    throwsWith(() => tlog.parseBundle(Uint8Array.of(0, 4, 1, 2, 3)), "malformed-bundle");
    assert.deepEqual(await tlog.leafHashesFromBundle(two), [refLeaf([1, 2, 3]), refLeaf([4, 5])]);
  });

  test("the fixture log's bundles hash to its level-0 tiles", async () => {
    const full = tlog.parseTile(await fixtureTile("tile/0/000"), 256);
    assert.deepEqual(await tlog.leafHashesFromBundle(await fixtureTile("tile/entries/000")), full);
    const partial = tlog.parseTile(await fixtureTile("tile/0/001.p/44"), 44);
    assert.deepEqual(await tlog.leafHashesFromBundle(await fixtureTile("tile/entries/001.p/44")), partial);
    // The level-1 tile holds the root of the first 256 leaves.
    assert.deepEqual(tlog.parseTile(await fixtureTile("tile/1/000.p/1"), 1)[0], refRoot(fixtureLeaves.slice(0, 256)));
    throwsWith(() => tlog.parseTile(new Uint8Array(33), 1), "malformed-tile");
  });

  test("rootFromTiles recomputes the signed root from the log's own tiles", async () => {
    const fetched = [];
    const fetchTile = async (path) => {
      fetched.push(path);
      return fixtureTile(path);
    };
    const cp = await tlog.verifyNote(fixture.checkpoints[300], fixture.log_vkey);
    assert.deepEqual(await tlog.rootFromTiles(cp.size, fetchTile), cp.root);
    // 300 = 256 + 32 + 8 + 4: one level-1 hash, then leaves of the partial tile, each tile once.
    assert.deepEqual(fetched, ["tile/1/000.p/1", "tile/0/001.p/44"]);
    // Sizes below 256 read the partial level-0 tile of their width, which
    // the log pruned once the full one existed; a partial tile is a prefix
    // of the full one (tlog-tiles), so serve that prefix.
    for (const size of [1, 2, 3, 100, 255, 256]) {
      const root = await tlog.rootFromTiles(size, async (p) => {
        if (size === 256) {
          // One complete subtree of height 8: a single level-1 hash.
          assert.equal(p, "tile/1/000.p/1");
          return fixtureTile(p);
        }
        assert.equal(p, `tile/0/000.p/${size}`, `size ${size}`);
        return (await fixtureTile("tile/0/000")).slice(0, 32 * size);
      });
      assert.deepEqual(root, rootAt(size), `size ${size}`);
    }
    assert.deepEqual(await tlog.rootFromTiles(0, () => assert.fail("fetched")), sha());
  });

  test("a changed byte in any tile used changes the root; a tile of the wrong length is refused", async () => {
    const cp = await tlog.verifyNote(fixture.checkpoints[300], fixture.log_vkey);
    for (const target of ["tile/1/000.p/1", "tile/0/001.p/44"]) {
      const bytes = await fixtureTile(target);
      // Only the hashes a root uses matter: the 32-hash subtrees of the partial tile are hashes 0-43.
      for (let k = 0; k < bytes.length; k += 7) {
        const root = await tlog.rootFromTiles(300, async (p) => (p === target ? flipped(bytes, k) : fixtureTile(p)));
        assert.notDeepEqual(root, cp.root, `${target} byte ${k}`);
      }
      await rejectsWith(tlog.rootFromTiles(300, async (p) => (p === target ? bytes.slice(1) : fixtureTile(p))), "malformed-tile");
      await rejectsWith(tlog.rootFromTiles(300, async (p) => (p === target ? Uint8Array.of(...bytes, 0) : fixtureTile(p))), "malformed-tile");
    }
  });

  test("rootFromTiles on tiles built from the spec's formula, up to level 2", async () => {
    // Reference tiles: level l position p holds MTH(D[p*256^l : (p+1)*256^l]).
    const count = 70000;
    const leaves = Array.from({ length: count }, (_, i) => refLeaf(enc(`leaf ${i}`)));
    const levels = [leaves];
    for (let span = 256; span <= count; span *= 256) {
      const row = [];
      for (let p = 0; (p + 1) * span <= count; p++) row.push(refRoot(leaves.slice(p * span, (p + 1) * span)));
      levels.push(row);
    }
    // A rolling root, so each size's reference costs nothing extra.
    const sizes = [1, 255, 256, 257, 511, 65535, 65536, 65537, 70000];
    for (const size of sizes) {
      // Serve exactly the files tlog-tiles has for this size, nothing else.
      const files = new Map();
      for (let l = 0; l < levels.length; l++) {
        const have = Math.floor(size / 256 ** l);
        for (let n = 0; n * 256 < have; n++) {
          const hashes = levels[l].slice(n * 256, Math.min(have, (n + 1) * 256));
          files.set(tlog.tilePath(l, n, hashes.length), Buffer.concat(hashes.map((h) => Buffer.from(h))));
        }
      }
      const root = await tlog.rootFromTiles(size, async (p) => {
        assert.ok(files.has(p), `size ${size}: ${p} is not served`);
        return new Uint8Array(files.get(p));
      });
      assert.deepEqual(root, refRoot(leaves.slice(0, size)), `size ${size}`);
    }
  });
});

describe("gateway receipts", () => {
  const logKey = fixture.log_vkey;
  const witnesses = [fixture.witnesses.ed25519, fixture.witnesses.ml_dsa_44];
  const ORDER = ["entry-hash", "envelope-id", "log-signature", "tree-size", "inclusion"];
  const clone = (r) => JSON.parse(JSON.stringify(r));

  /** Asserts the steps all pass, or pass up to `step`, which fails. */
  function assertSteps(steps, failing = null, what = "") {
    const last = steps[steps.length - 1];
    steps.slice(0, -1).forEach((s) => assert.ok(s.ok, `${what}: step ${s.step} should pass: ${s.detail}`));
    for (const s of steps) {
      assert.equal(typeof s.detail, "string");
      assert.ok(s.detail.length > 0);
      assert.ok(!/^invalid$/i.test(s.detail));
    }
    if (failing === null) {
      assert.ok(last.ok, `${what}: ${last.step} failed: ${last.detail}`);
    } else {
      assert.equal(last.step, failing, `${what}: failed at ${last.step} (${last.detail}), not ${failing}`);
      assert.equal(last.ok, false, what);
    }
  }

  test("the fixture receipt, which `xgate audit verify-receipt` accepted, passes every step", async () => {
    const steps = await tlog.verifyReceipt(fixture.receipt, logKey);
    assert.deepEqual(steps.map((s) => s.step), [...ORDER, "quorum"]);
    assertSteps(steps);
  });

  test("witnesses: verified, unsupported or absent, and the quorum", async () => {
    const cosigned = fixture.receipt_cosigned;
    let steps = await tlog.verifyReceipt(cosigned, logKey, witnesses, 1);
    assert.deepEqual(steps.map((s) => s.step), [...ORDER, "cosignature witness.example/w1", "cosignature witness.example/pq", "quorum"]);
    assertSteps(steps);
    assert.equal(steps[5].status, "verified");
    assert.equal(typeof steps[5].time, "bigint");
    assert.equal(steps[6].status, "unsupported");
    // ML-DSA cannot count here, so two of two cannot be met.
    steps = await tlog.verifyReceipt(cosigned, logKey, witnesses, 2);
    assertSteps(steps, "quorum");
    assert.match(steps.at(-1).detail, /1 of the 2 witnesses verified, 2 required/);
    steps = await tlog.verifyReceipt(cosigned, logKey, witnesses, 3);
    assertSteps(steps, "quorum");
    assert.match(steps.at(-1).detail, /impossible/);
    // A witness listed twice is one witness.
    steps = await tlog.verifyReceipt(cosigned, logKey, [witnesses[0], witnesses[0]], 1);
    assert.equal(steps.filter((s) => s.step.startsWith("cosignature")).length, 1);
    assertSteps(steps);
    assertSteps(await tlog.verifyReceipt(cosigned, logKey, [witnesses[0], witnesses[0]], 2), "quorum");
    // The plain receipt carries no cosignatures: absent, which fails only a quorum.
    steps = await tlog.verifyReceipt(fixture.receipt, logKey, witnesses, 0);
    assertSteps(steps);
    assert.deepEqual(steps.slice(5, 7).map((s) => s.status), ["absent", "absent"]);
    assertSteps(await tlog.verifyReceipt(fixture.receipt, logKey, witnesses, 1), "quorum");
  });

  test("every byte changed in the entry or the leaf fails at entry-hash", async () => {
    const entry = b64(fixture.receipt.entry);
    for (let k = 0; k < entry.length; k++) {
      const r = { ...fixture.receipt, entry: tlog.base64Encode(flipped(entry, k)) };
      assertSteps(await tlog.verifyReceipt(r, logKey), "entry-hash", `entry byte ${k}`);
    }
    const leaf = b64(fixture.receipt.leaf_hash);
    for (let k = 0; k < leaf.length; k++) {
      const r = { ...fixture.receipt, leaf_hash: tlog.base64Encode(flipped(leaf, k)) };
      assertSteps(await tlog.verifyReceipt(r, logKey), "entry-hash", `leaf byte ${k}`);
    }
  });

  test("every byte changed in the proof fails at inclusion", async () => {
    const proof = fixture.receipt.inclusion_proof.map((h) => b64(h));
    assert.ok(proof.length >= 8);
    for (let h = 0; h < proof.length; h++) {
      for (let k = 0; k < 32; k++) {
        const r = { ...fixture.receipt, inclusion_proof: proof.map((x, j) => tlog.base64Encode(j === h ? flipped(x, k) : x)) };
        const steps = await tlog.verifyReceipt(r, logKey);
        assertSteps(steps, "inclusion", `proof hash ${h} byte ${k}`);
        assert.match(steps.at(-1).detail, /does not lead to the expected root/);
      }
    }
    const short = { ...fixture.receipt, inclusion_proof: fixture.receipt.inclusion_proof.slice(1) };
    assert.match((await tlog.verifyReceipt(short, logKey)).at(-1).detail, /too few/);
    const notHash = { ...fixture.receipt, inclusion_proof: [...fixture.receipt.inclusion_proof.slice(1), "AAAA"] };
    assert.match((await tlog.verifyReceipt(notHash, logKey)).at(-1).detail, /inclusion_proof\[\d+\] is 3 bytes/);
  });

  test("every byte changed in the checkpoint note fails at log-signature", async () => {
    const note = enc(fixture.receipt.checkpoint);
    for (let k = 0; k < note.length; k++) {
      // A change that leaves invalid UTF-8 cannot be carried by JSON text; skip those.
      let text;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(flipped(note, k));
      } catch {
        continue;
      }
      const r = { ...fixture.receipt, checkpoint: text };
      assertSteps(await tlog.verifyReceipt(r, logKey), "log-signature", `note byte ${k}`);
    }
    // The signature's bytes, each.
    const body = tlog.parseNote(fixture.receipt.checkpoint).body;
    const [line] = tlog.parseNote(fixture.receipt.checkpoint).signatures;
    const blob = Uint8Array.of(...line.keyHash, ...line.sig);
    for (let k = 0; k < blob.length; k++) {
      const r = { ...fixture.receipt, checkpoint: `${body}\n\u2014 ${line.name} ${tlog.base64Encode(flipped(blob, k))}\n` };
      const steps = await tlog.verifyReceipt(r, logKey);
      assertSteps(steps, "log-signature", `signature byte ${k}`);
      assert.match(steps.at(-1).detail, k < 4 ? /no signature from/ : /does not verify/);
    }
  });

  test("other fields changed fail at their own step", async () => {
    const base = fixture.receipt;
    assertSteps(await tlog.verifyReceipt({ ...base, tree_size: 299 }, logKey), "tree-size");
    assertSteps(await tlog.verifyReceipt({ ...base, tree_size: 301 }, logKey), "tree-size");
    assertSteps(await tlog.verifyReceipt({ ...base, tree_size: -1 }, logKey), "tree-size");
    assertSteps(await tlog.verifyReceipt({ ...base, log_index: 149 }, logKey), "inclusion");
    assertSteps(await tlog.verifyReceipt({ ...base, log_index: 151 }, logKey), "inclusion");
    assertSteps(await tlog.verifyReceipt({ ...base, log_index: 300 }, logKey), "inclusion");
    assertSteps(await tlog.verifyReceipt({ ...base, id: base.id.replace(/^./, (c) => (c === "0" ? "1" : "0")) }, logKey), "envelope-id");
    // A valid checkpoint of another size.
    assertSteps(await tlog.verifyReceipt({ ...base, checkpoint: fixture.checkpoints[100] }, logKey), "tree-size");
    // Another key, a witness key, a malformed key.
    const other = await newSigner(fixture.origin, 0x01);
    assertSteps(await tlog.verifyReceipt(base, other.vkey), "log-signature");
    const wrongType = await tlog.verifyReceipt(base, fixture.witnesses.ed25519);
    assertSteps(wrongType, "log-signature");
    assert.match(wrongType.at(-1).detail, /not a note signing key/);
    const mangled = fixture.log_vkey.replace(/\+([0-9a-f])/, (_, c) => `+${c === "0" ? "1" : "0"}`);
    assert.match((await tlog.verifyReceipt(base, mangled)).at(-1).detail, /key hash .* does not match/);
    // Missing or mistyped fields say which.
    const { entry: _e, ...noEntry } = base;
    const steps = await tlog.verifyReceipt(noEntry, logKey);
    assertSteps(steps, "entry-hash");
    assert.match(steps.at(-1).detail, /no entry/);
    assertSteps(await tlog.verifyReceipt(null, logKey), "entry-hash");
    assertSteps(await tlog.verifyReceipt({ ...base, inclusion_proof: "x" }, logKey), "inclusion");
    assertSteps(await tlog.verifyReceipt({ ...base, entry: tlog.base64Encode(enc('{"v":1,"envelope":"x"}')), leaf_hash: tlog.base64Encode(refLeaf(enc('{"v":1,"envelope":"x"}'))) }, logKey), "envelope-id");
  });

  test("a changed cosignature fails at its witness's step", async () => {
    const note = fixture.receipt_cosigned.checkpoint;
    const line = tlog.parseSignatureLine(fixture.cosignature_lines.ed25519[300].trimEnd());
    const blob = Uint8Array.of(...line.keyHash, ...line.sig);
    for (let k = 4; k < blob.length; k++) {
      const bad = `\u2014 ${line.name} ${tlog.base64Encode(flipped(blob, k))}`;
      const r = { ...fixture.receipt_cosigned, checkpoint: note.replace(line.line, bad) };
      const steps = await tlog.verifyReceipt(r, logKey, witnesses, 1);
      assertSteps(steps, "cosignature witness.example/w1", `cosignature byte ${k}`);
      assert.equal(steps.at(-1).status, "invalid");
    }
    // A malformed witness key is named.
    const steps = await tlog.verifyReceipt(fixture.receipt_cosigned, logKey, ["nonsense"], 0);
    assert.match(steps.at(-1).detail, /witness key 0 is not usable/);
    assert.equal(clone(fixture.receipt_cosigned).checkpoint, note, "fixture unchanged");
  });
});

describe("the module", () => {
  test("depends on nothing but WebCrypto, TextEncoder/TextDecoder and atob/btoa", () => {
    const source = readFileSync(new URL("tlog.js", here), "utf8");
    // Comments may mention Node; code may not use it.
    const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bimport\b|\brequire\s*\(/);
    assert.doesNotMatch(code, /\b(Buffer|process|globalThis\.(?!crypto\b)\w+|window|document|fetch|setTimeout)\b/);
    const globals = new Set(code.match(/\b(crypto|TextEncoder|TextDecoder|atob|btoa)\b/g));
    assert.deepEqual([...globals].sort(), ["TextDecoder", "TextEncoder", "atob", "btoa", "crypto"]);
  });
});
