// SPDX-License-Identifier: Apache-2.0
/**
 * @file Verification of the xgate transparency log, in the browser or Node 20.
 *
 * What it checks, byte for byte as the Rust side (`ledger/src`) produces it:
 *
 * - RFC 9162 section 2.1 Merkle tree hashing, inclusion proofs (2.1.3.2)
 *   and consistency proofs (2.1.4.2);
 * - C2SP signed-note notes and verifier keys, with Ed25519 (type 0x01)
 *   checkpoint signatures, and C2SP tlog-checkpoint bodies;
 * - C2SP tlog-cosignature witness cosignatures: Ed25519 cosignature/v1
 *   (type 0x04) are verified; ML-DSA-44 (type 0x06) are recognised but
 *   reported as unsupported, since WebCrypto has no ML-DSA;
 * - C2SP tlog-tiles paths, entry bundles and the tree root recomputed from
 *   tiles of height 8;
 * - the gateway's receipts (`gateway/server/src/receipt.rs`), step by step.
 *
 * Dependencies: WebCrypto (`crypto.subtle`: SHA-256, Ed25519),
 * TextEncoder/TextDecoder and atob/btoa. Nothing else, so the same file is
 * served to the auditor's page and tested under `node --test`.
 *
 * Conventions. Bytes are `Uint8Array`. Tree sizes, indices and timestamps
 * are unsigned 64-bit on the Rust side, so they come back as `BigInt`;
 * arguments may be a `BigInt` or a safe non-negative integer `Number`.
 * Every check either resolves (to `true` or a result object) or rejects
 * with a {@link VerifyError} whose `code` names the failure and whose
 * message says what was wrong: never a bare "invalid". All checks are
 * async (WebCrypto is), so always `await` them: an un-awaited promise is
 * truthy.
 *
 * @module tlog
 */

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();
/** Refuses invalid UTF-8 instead of silently replacing it. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Length in bytes of every hash in the log (SHA-256). */
export const HASH_LEN = 32;
/** Height of a C2SP tlog-tiles tile (`ledger/src/tlog/shape.rs`). */
export const TILE_HEIGHT = 8;
/** Hashes in a full tile, and entries in a full bundle: 2^8. */
export const TILE_WIDTH = 256;
/** The highest tile level tlog-tiles allows. */
export const MAX_TILE_LEVEL = 63;
/** Signed-note key type: Ed25519 note signature (the log's checkpoint key). */
export const KEY_TYPE_ED25519 = 0x01;
/** Signed-note key type: Ed25519 cosignature/v1 (a witness key). */
export const KEY_TYPE_COSIGNATURE_V1 = 0x04;
/** Signed-note key type: ML-DSA-44 cosignature (a witness key). */
export const KEY_TYPE_ML_DSA_44 = 0x06;
/** Most signature lines a note may carry (as Go's note package and the Rust side). */
export const MAX_SIGNATURES = 100;
/** The largest cosignature timestamp, 2^63 - 1. */
export const MAX_TIMESTAMP = (1n << 63n) - 1n;

const U64_MAX = (1n << 64n) - 1n;
const ED25519_KEY_LEN = 32;
const ED25519_SIG_LEN = 64;
const ML_DSA_44_KEY_LEN = 1312;
const ML_DSA_44_SIG_LEN = 2420;
const EM_DASH_PREFIX = "\u2014 ";

// Kept private: a typed array cannot be frozen, and a caller writing into
// an exported one would change what the empty tree's root is here.
const EMPTY_ROOT = hexToBytes("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

/**
 * `SHA-256("")`, the root of the empty tree (RFC 9162 section 2.1.1).
 * @returns {Uint8Array} a fresh copy
 */
export function emptyRoot() {
  return EMPTY_ROOT.slice();
}

/**
 * Why a verification failed. `code` is stable and machine-readable
 * (e.g. `"root-mismatch"`, `"wrong-proof-length"`, `"bad-signature"`);
 * `message` is for people.
 */
export class VerifyError extends Error {
  /**
   * @param {string} code stable identifier of the failure
   * @param {string} message what exactly was wrong
   */
  constructor(code, message) {
    super(message);
    this.name = "VerifyError";
    this.code = code;
  }
}

function fail(code, message) {
  throw new VerifyError(code, message);
}

// ---------------------------------------------------------------------------
// Bytes, base64, numbers
// ---------------------------------------------------------------------------

/**
 * Decodes standard base64 with padding, refusing every other spelling.
 *
 * The Rust side decodes with `base64::STANDARD`, which requires canonical
 * padding and zero trailing bits; accepting more here would let two
 * different strings stand for one hash.
 *
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {VerifyError} `bad-base64`
 */
export function base64Decode(text) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    fail("bad-base64", "not standard padded base64");
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  // Re-encoding catches non-zero trailing bits ("AB==" vs "AA==").
  if (base64Encode(bytes) !== text) fail("bad-base64", "not canonical base64");
  return bytes;
}

/**
 * Encodes bytes as standard base64 with padding.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function base64Encode(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * Decodes a base64 SHA-256 hash (32 bytes), as every `xgate` output spells hashes.
 * @param {string} text
 * @param {string} [what] what the hash is, for the error message
 * @returns {Uint8Array}
 * @throws {VerifyError} `bad-hash`
 */
export function decodeHash(text, what = "hash") {
  let bytes;
  try {
    bytes = base64Decode(text);
  } catch {
    fail("bad-hash", `${what} is not standard base64`);
  }
  if (bytes.length !== HASH_LEN) fail("bad-hash", `${what} is ${bytes.length} bytes, not ${HASH_LEN}`);
  return bytes;
}

/** Lowercase hex of bytes. @param {Uint8Array} bytes @returns {string} */
export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Whether two byte arrays are equal. Every byte is looked at (no early
 * exit), though nothing compared here is secret: hashes and key ids.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function asBytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what} must be a Uint8Array`);
}

function asHash(value, what) {
  const bytes = asBytes(value, what);
  if (bytes.length !== HASH_LEN) fail("bad-hash", `${what} is ${bytes.length} bytes, not ${HASH_LEN}`);
  return bytes;
}

/**
 * A u64 argument as a BigInt. Numbers must be safe integers: above 2^53 a
 * Number may already be a neighbouring value, and a proof checked for the
 * wrong index is no check at all.
 */
function toU64(value, what) {
  if (typeof value === "bigint") {
    if (value < 0n || value > U64_MAX) fail("out-of-range", `${what} ${value} is not a 64-bit unsigned integer`);
    return value;
  }
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  return fail("out-of-range", `${what} ${String(value)} is not a non-negative integer`);
}

// ---------------------------------------------------------------------------
// RFC 9162 hashing
// ---------------------------------------------------------------------------

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

/**
 * The leaf hash of one log entry, `SHA-256(0x00 || bytes)` (RFC 9162 2.1.1).
 * The 0x00 prefix keeps a leaf from ever being taken for an interior node.
 * @param {Uint8Array} bytes the entry exactly as logged
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function leafHash(bytes) {
  return sha256(concat(Uint8Array.of(0x00), asBytes(bytes, "entry")));
}

/**
 * An interior node, `SHA-256(0x01 || left || right)` (RFC 9162 2.1.1).
 * @param {Uint8Array} left 32 bytes
 * @param {Uint8Array} right 32 bytes
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(0x01), asHash(left, "left node"), asHash(right, "right node")));
}

// ---------------------------------------------------------------------------
// RFC 9162 proofs
// ---------------------------------------------------------------------------

/**
 * Verifies an inclusion proof, RFC 9162 section 2.1.3.2, step by step.
 *
 * `size` must be the size `root` was signed for: the RFC's computation
 * binds it only through the path's shape, and some neighbouring sizes
 * share a shape (leaf 0 of 6 and of 7), so take both from one verified
 * checkpoint, as {@link verifyReceipt} does.
 *
 * @param {Uint8Array} leaf the leaf hash (not the entry)
 * @param {bigint|number} index the leaf's index
 * @param {bigint|number} size the tree size the proof is for
 * @param {Uint8Array[]} proofHashes the audit path, leaf to root
 * @param {Uint8Array} root the tree's root hash for `size`
 * @returns {Promise<true>}
 * @throws {VerifyError} `out-of-range` (index not below size, size 0),
 *   `wrong-proof-length`, `bad-hash` (a hash not 32 bytes) or `root-mismatch`
 */
export async function verifyInclusion(leaf, index, size, proofHashes, root) {
  const i = toU64(index, "leaf index");
  const n = toU64(size, "tree size");
  if (i >= n) fail("out-of-range", `leaf index ${i} is not below tree size ${n}`);
  const path = checkPath(proofHashes);
  asHash(root, "root");
  // The RFC walks fn (the leaf's position) and sn (the last position) up
  // the tree; the proof's length is fixed by the two, so any other length
  // is refused before the root is even compared.
  let fn = i;
  let sn = n - 1n;
  let r = asHash(leaf, "leaf hash");
  for (const p of path) {
    if (sn === 0n) fail("wrong-proof-length", `inclusion proof has ${path.length} hashes, too many for index ${i} in size ${n}`);
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      // Skip the levels where the node is a lone rightmost child.
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("wrong-proof-length", `inclusion proof has ${path.length} hashes, too few for index ${i} in size ${n}`);
  if (!bytesEqual(r, root)) fail("root-mismatch", "inclusion proof does not lead to the expected root");
  return true;
}

/**
 * Verifies a consistency proof, RFC 9162 section 2.1.4.2: the tree of
 * `oldSize` with `oldRoot` is a prefix of the tree of `newSize` with
 * `newRoot`.
 *
 * Beyond the RFC's `0 < old < new`, as the Rust verifier: equal sizes need
 * an empty proof and equal roots; old size 0 needs an empty proof and the
 * empty tree's root.
 *
 * @param {bigint|number} oldSize
 * @param {bigint|number} newSize
 * @param {Uint8Array[]} proofHashes the proof nodes, in RFC order
 * @param {Uint8Array} oldRoot
 * @param {Uint8Array} newRoot
 * @returns {Promise<true>}
 * @throws {VerifyError} `out-of-range` (old above new),
 *   `wrong-proof-length`, `bad-hash` or `root-mismatch`
 */
export async function verifyConsistency(oldSize, newSize, proofHashes, oldRoot, newRoot) {
  const first = toU64(oldSize, "old size");
  const second = toU64(newSize, "new size");
  if (first > second) fail("out-of-range", `old size ${first} is larger than new size ${second}`);
  const path = checkPath(proofHashes);
  asHash(oldRoot, "old root");
  asHash(newRoot, "new root");
  if (first === second || first === 0n) {
    if (path.length !== 0) fail("wrong-proof-length", `a proof from size ${first} to ${second} must be empty, not ${path.length} hashes`);
    const expected = first === 0n ? EMPTY_ROOT : newRoot;
    if (!bytesEqual(oldRoot, expected)) {
      fail("root-mismatch", first === 0n ? "old root is not the empty tree's root" : "equal sizes with different roots");
    }
    return true;
  }
  // Step 1: an empty path proves nothing.
  if (path.length === 0) fail("wrong-proof-length", `consistency proof from ${first} to ${second} is empty`);
  // Step 2: when the old tree is a complete subtree its root is not sent.
  const c = (first & (first - 1n)) === 0n ? [oldRoot, ...path] : path;
  // Steps 3-4.
  let fn = first - 1n;
  let sn = second - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // Steps 5-6.
  let fr = c[0];
  let sr = c[0];
  for (const h of c.slice(1)) {
    if (sn === 0n) fail("wrong-proof-length", `consistency proof has ${path.length} hashes, too many for ${first} to ${second}`);
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(h, fr);
      sr = await nodeHash(h, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, h);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 7.
  if (sn !== 0n) fail("wrong-proof-length", `consistency proof has ${path.length} hashes, too few for ${first} to ${second}`);
  if (!bytesEqual(fr, oldRoot)) fail("root-mismatch", "consistency proof does not lead to the old root");
  if (!bytesEqual(sr, newRoot)) fail("root-mismatch", "consistency proof does not lead to the new root");
  return true;
}

function checkPath(proofHashes) {
  if (!Array.isArray(proofHashes)) throw new TypeError("proof must be an array of 32-byte hashes");
  // A tree of 2^64 leaves is 64 levels deep: no valid proof is longer.
  if (proofHashes.length > 64) fail("wrong-proof-length", `proof has ${proofHashes.length} hashes, more than 64`);
  return proofHashes.map((h, k) => asHash(h, `proof hash ${k}`));
}

// ---------------------------------------------------------------------------
// C2SP signed-note
// ---------------------------------------------------------------------------

/**
 * Whether `name` can be a key name: non-empty, without Unicode white space
 * or `+` (as `ledger/src/note.rs` and Go's note package).
 * @param {string} name
 * @returns {boolean}
 */
export function isValidKeyName(name) {
  return typeof name === "string" && name.length > 0 && !/[\p{White_Space}+]/u.test(name);
}

/**
 * @typedef {object} SignatureLine
 * @property {string} name the signer's key name
 * @property {Uint8Array} keyHash the 4-byte key id
 * @property {Uint8Array} sig the signature blob after the key id (never empty)
 * @property {string} line the line as written, without its newline
 */

/**
 * Splits a signed note into its signed text and its signature lines,
 * checking the framing only (no signature is verified here).
 *
 * The text is everything up to and including the newline before the last
 * blank line, so it may itself hold blank lines; the signatures are the
 * lines `— NAME BASE64(keyhash || signature)` after it, each ending in a
 * newline.
 *
 * @param {string|Uint8Array} text the note (bytes must be UTF-8)
 * @returns {{body: string, signatures: SignatureLine[]}}
 * @throws {VerifyError} `malformed-note`
 */
export function parseNote(text) {
  const note = noteString(text);
  const bad = (why) => fail("malformed-note", `malformed signed note: ${why}`);
  // Control characters could hide text from a reader of the note.
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) bad("control character in the note");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) bad("no blank line before the signatures");
  const body = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block === "") bad("no signature lines");
  if (!block.endsWith("\n")) bad("signatures must end with a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) bad(`more than ${MAX_SIGNATURES} signatures`);
  return { body, signatures: lines.map(parseSignatureLine) };
}

/**
 * Parses one signature line, `— NAME BASE64`, without its newline.
 * @param {string} line
 * @returns {SignatureLine}
 * @throws {VerifyError} `malformed-note`
 */
export function parseSignatureLine(line) {
  const bad = (why) => fail("malformed-note", `malformed signed note: ${why}`);
  if (!line.startsWith(EM_DASH_PREFIX)) bad("signature line must start with an em dash and a space");
  const rest = line.slice(EM_DASH_PREFIX.length);
  const space = rest.indexOf(" ");
  if (space < 0) bad("signature line has no signature");
  const name = rest.slice(0, space);
  if (!isValidKeyName(name)) bad(`invalid signer name ${JSON.stringify(name)}`);
  let blob;
  try {
    blob = base64Decode(rest.slice(space + 1));
  } catch {
    bad(`signature of ${name} is not standard base64`);
  }
  if (blob.length < 5) bad(`signature of ${name} is too short`);
  return { name, keyHash: blob.slice(0, 4), sig: blob.slice(4), line };
}

function noteString(text) {
  if (typeof text === "string") {
    // A lone surrogate would be signed as U+FFFD: not the text shown.
    if (!isWellFormed(text)) fail("malformed-note", "malformed signed note: not valid Unicode");
    return text;
  }
  const bytes = asBytes(text, "note");
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return fail("malformed-note", "malformed signed note: not UTF-8");
  }
}

function isWellFormed(s) {
  if (typeof s.isWellFormed === "function") return s.isWellFormed();
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/**
 * @typedef {object} VerifierKey
 * @property {string} name the key name (a log's origin, a witness's name)
 * @property {Uint8Array} keyHash the 4-byte key id, checked against the key
 * @property {number} type 0x01 (Ed25519 note), 0x04 (Ed25519 cosignature/v1)
 *   or 0x06 (ML-DSA-44 cosignature)
 * @property {Uint8Array} key the public key (32 or 1312 bytes)
 * @property {string} alg `"ed25519"`, `"cosignature/v1"` or `"ml-dsa-44"`
 * @property {boolean} supported whether this module can verify its signatures
 * @property {string} vkey the key as given, without trailing white space
 */

/**
 * Parses a verifier key `NAME+HEXKEYHASH+BASE64(type || key)` and checks
 * that its key hash is `SHA-256(NAME || 0x0A || type || key)[:4]`: a key
 * whose id does not match would make signature lines ambiguous.
 *
 * @param {string} vkey
 * @returns {Promise<VerifierKey>}
 * @throws {VerifyError} `malformed-key`, `unsupported-key-type` or `key-hash-mismatch`
 */
export async function parseVerifierKey(vkey) {
  if (typeof vkey !== "string") throw new TypeError("verifier key must be a string");
  const text = vkey.trimEnd();
  const bad = (why) => fail("malformed-key", `malformed verifier key: ${why}`);
  // The base64 may hold '+': split at the first two only.
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) bad("expected NAME+KEYHASH+KEY");
  const name = text.slice(0, first);
  const id = text.slice(first + 1, second);
  if (!isValidKeyName(name)) bad("names must be non-empty, without spaces or '+'");
  if (!/^[0-9a-f]{8}$/.test(id)) bad("key hash must be 8 lowercase hex digits");
  let material;
  try {
    material = base64Decode(text.slice(second + 1));
  } catch {
    bad("key is not standard base64");
  }
  if (material.length === 0) bad("empty key");
  const type = material[0];
  const key = material.slice(1);
  const shapes = {
    [KEY_TYPE_ED25519]: ["ed25519", ED25519_KEY_LEN, true],
    [KEY_TYPE_COSIGNATURE_V1]: ["cosignature/v1", ED25519_KEY_LEN, true],
    [KEY_TYPE_ML_DSA_44]: ["ml-dsa-44", ML_DSA_44_KEY_LEN, false],
  };
  const shape = shapes[type];
  if (!shape) fail("unsupported-key-type", `key type 0x${type.toString(16).padStart(2, "0")} is not 0x01, 0x04 or 0x06`);
  const [alg, length, supported] = shape;
  if (key.length !== length) bad(`a ${alg} key is ${length} bytes, not ${key.length}`);
  const keyHash = await computeKeyHash(name, type, key);
  if (bytesToHex(keyHash) !== id) {
    fail("key-hash-mismatch", `key hash ${id} does not match the key (expected ${bytesToHex(keyHash)})`);
  }
  return { name, keyHash, type, key, alg, supported, vkey: text };
}

/**
 * The key id of signed-note keys, `SHA-256(name || 0x0A || type || key)[:4]`.
 * @param {string} name
 * @param {number} type
 * @param {Uint8Array} key
 * @returns {Promise<Uint8Array>} 4 bytes
 */
export async function computeKeyHash(name, type, key) {
  const digest = await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, type), key));
  return digest.slice(0, 4);
}

async function asKey(vkey) {
  return typeof vkey === "string" ? parseVerifierKey(vkey) : vkey;
}

/** Ed25519 verification; the CryptoKey is cached on the parsed key. */
async function ed25519Verify(parsed, message, signature) {
  if (signature.length !== ED25519_SIG_LEN) return false;
  if (!parsed.cryptoKey) {
    parsed.cryptoKey = await subtle.importKey("raw", parsed.key, { name: "Ed25519" }, false, ["verify"]);
  }
  return subtle.verify({ name: "Ed25519" }, parsed.cryptoKey, signature, message);
}

function linesOf(parsedNote, key) {
  return parsedNote.signatures.filter((s) => s.name === key.name && bytesEqual(s.keyHash, key.keyHash));
}

/**
 * @typedef {object} Checkpoint
 * @property {string} origin the log's origin (its key name)
 * @property {bigint} size the number of entries committed to
 * @property {Uint8Array} root the root hash for `size`
 * @property {string[]} extensions extension lines, without newlines
 * @property {string} body the checkpoint text exactly as signed
 */

/**
 * Parses a C2SP tlog-checkpoint body: origin line, size in canonical
 * decimal (no sign, no leading zeros, below 2^64), base64 root hash of 32
 * bytes, optional non-empty extension lines, every line ending in "\n".
 * Non-canonical sizes are refused so that one checkpoint has one spelling.
 *
 * @param {string} body
 * @returns {Checkpoint}
 * @throws {VerifyError} `malformed-checkpoint`
 */
export function parseCheckpoint(body) {
  const bad = (why) => fail("malformed-checkpoint", `malformed checkpoint: ${why}`);
  if (typeof body !== "string") throw new TypeError("checkpoint body must be a string");
  if (!body.endsWith("\n")) bad("text must end with a newline");
  const lines = body.slice(0, -1).split("\n");
  const [origin, size, root, ...extensions] = lines;
  if (!origin) bad("empty origin line");
  if (size === undefined) bad("missing size line");
  if (root === undefined) bad("missing root hash line");
  if (extensions.some((l) => l === "")) bad("empty extension line");
  if (!/^(0|[1-9][0-9]*)$/.test(size)) bad(`size ${JSON.stringify(size)} is not a decimal number without leading zeros`);
  const n = BigInt(size);
  if (n > U64_MAX) bad(`size ${size} does not fit in 64 bits`);
  let rootBytes;
  try {
    rootBytes = decodeHash(root, "root hash");
  } catch {
    bad("root hash is not 32 bytes of standard base64");
  }
  return { origin, size: n, root: rootBytes, extensions, body };
}

/**
 * Checks that a signed note carries a valid Ed25519 signature (type 0x01)
 * by `vkey` and returns its signed text, whatever that text says.
 *
 * As the Rust verifier (`NoteVerifier::open`): signature lines of other
 * keys are ignored (signed-note asks so), every line of this key must
 * verify over the text's UTF-8 bytes, and at least one must be there.
 *
 * @param {string|Uint8Array} text the signed note
 * @param {string|VerifierKey} vkey an Ed25519 note key
 * @returns {Promise<string>} the signed text, final newline included
 * @throws {VerifyError} `malformed-note`, `malformed-key`,
 *   `key-hash-mismatch`, `wrong-key-type`, `no-signature` or `bad-signature`
 */
export async function openNote(text, vkey) {
  const key = await asKey(vkey);
  if (key.type !== KEY_TYPE_ED25519) {
    fail("wrong-key-type", `key ${key.name} is of type 0x${key.type.toString(16).padStart(2, "0")}, not a note signing key (0x01)`);
  }
  const note = parseNote(text);
  const mine = linesOf(note, key);
  if (mine.length === 0) fail("no-signature", `note has no signature from ${key.name}+${bytesToHex(key.keyHash)}`);
  const message = utf8.encode(note.body);
  for (const line of mine) {
    if (!(await ed25519Verify(key, message, line.sig))) fail("bad-signature", `signature from ${key.name} does not verify`);
  }
  return note.body;
}

/**
 * Verifies a signed checkpoint note with the log's Ed25519 key (type 0x01)
 * and returns the checkpoint: {@link openNote}, then the text must be a
 * checkpoint ({@link parseCheckpoint}) whose origin is the key's name (a
 * log's key signs only its own checkpoints).
 *
 * @param {string|Uint8Array} text the signed note
 * @param {string|VerifierKey} vkey the log's verifier key
 * @returns {Promise<Checkpoint>}
 * @throws {VerifyError} as {@link openNote}, or `malformed-checkpoint`,
 *   `wrong-origin`
 */
export async function verifyNote(text, vkey) {
  const key = await asKey(vkey);
  const checkpoint = parseCheckpoint(await openNote(text, key));
  if (checkpoint.origin !== key.name) {
    fail("wrong-origin", `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(key.name)}`);
  }
  return checkpoint;
}

// ---------------------------------------------------------------------------
// C2SP tlog-cosignature
// ---------------------------------------------------------------------------

/**
 * The message an Ed25519 cosignature/v1 signs: `cosignature/v1\n`,
 * `time <decimal>\n`, then the whole checkpoint body (extension lines
 * included).
 * @param {bigint|number} time POSIX seconds
 * @param {string} body the checkpoint text, final newline included
 * @returns {Uint8Array}
 */
export function cosignatureMessage(time, body) {
  const t = toU64(time, "timestamp");
  return utf8.encode(`cosignature/v1\ntime ${t}\n${body}`);
}

/**
 * Splits a cosignature blob (a signature line's bytes after the key hash)
 * into its big-endian timestamp and the signature proper.
 * @param {Uint8Array} sig
 * @returns {{time: bigint, signature: Uint8Array}}
 * @throws {VerifyError} `bad-cosignature` if shorter than the 8-byte timestamp
 */
export function splitCosignature(sig) {
  if (sig.length < 8) fail("bad-cosignature", "cosignature shorter than its timestamp");
  let time = 0n;
  for (let k = 0; k < 8; k++) time = (time << 8n) | BigInt(sig[k]);
  return { time, signature: sig.slice(8) };
}

/**
 * Verifies a witness's cosignature on a checkpoint note (C2SP
 * tlog-cosignature) and returns when it was made.
 *
 * For an Ed25519 witness key (type 0x04) every line of that key must verify
 * (one bad line is evidence of something wrong, as on the Rust side); the
 * earliest timestamp is returned. For an ML-DSA-44 key (type 0x06) the line
 * is checked for presence and length only and `{unsupported: true}` comes
 * back: WebCrypto cannot verify ML-DSA, so it must not count towards a
 * quorum here. The log's own signature is not checked: use
 * {@link verifyNote} for that.
 *
 * @param {string|Uint8Array} noteText the cosigned checkpoint note
 * @param {string|VerifierKey} witnessVkey
 * @returns {Promise<{time: bigint}|{unsupported: true, alg: string}>}
 *   `time` in POSIX seconds (0: the witness makes no statement on time)
 * @throws {VerifyError} `no-signature` (absent), `bad-cosignature`,
 *   `bad-timestamp`, `wrong-key-type`, `malformed-note`, `malformed-checkpoint`
 */
export async function verifyCosignature(noteText, witnessVkey) {
  const key = await asKey(witnessVkey);
  if (key.type !== KEY_TYPE_COSIGNATURE_V1 && key.type !== KEY_TYPE_ML_DSA_44) {
    fail("wrong-key-type", `key ${key.name} is of type 0x${key.type.toString(16).padStart(2, "0")}, not a cosigner key (0x04 or 0x06)`);
  }
  const note = parseNote(noteText);
  const mine = linesOf(note, key);
  if (mine.length === 0) fail("no-signature", `no cosignature from ${key.name}+${bytesToHex(key.keyHash)}`);
  // Both types sign checkpoints only.
  parseCheckpoint(note.body);
  const expectedLen = 8 + (key.type === KEY_TYPE_ML_DSA_44 ? ML_DSA_44_SIG_LEN : ED25519_SIG_LEN);
  let earliest = null;
  for (const line of mine) {
    if (line.sig.length !== expectedLen) {
      fail("bad-cosignature", `cosignature from ${key.name} is ${line.sig.length} bytes, not ${expectedLen}`);
    }
    const { time, signature } = splitCosignature(line.sig);
    if (time > MAX_TIMESTAMP) fail("bad-timestamp", `cosignature from ${key.name} has timestamp ${time} above 2^63-1`);
    if (key.type === KEY_TYPE_ML_DSA_44) continue;
    if (!(await ed25519Verify(key, cosignatureMessage(time, note.body), signature))) {
      fail("bad-cosignature", `cosignature from ${key.name} does not verify`);
    }
    if (earliest === null || time < earliest) earliest = time;
  }
  if (key.type === KEY_TYPE_ML_DSA_44) return { unsupported: true, alg: key.alg };
  return { time: earliest };
}

// ---------------------------------------------------------------------------
// C2SP tlog-tiles
// ---------------------------------------------------------------------------

/**
 * The path of a tile, `tile/<L>/<N>[.p/<W>]`, or with `level` "entries"
 * of an entry bundle, `tile/entries/<N>[.p/<W>]`, as
 * `ledger/src/tlog/path.rs` names the files it serves.
 *
 * `<N>` is the index in groups of three digits, every group but the last
 * prefixed with `x` (1234067 is `x001/x234/067`).
 *
 * @param {number|"entries"} level 0 to 63, or "entries"
 * @param {bigint|number} index the tile's index within its level
 * @param {number} [width=256] 256 (full) or 1 to 255 (partial, `.p/W`)
 * @returns {string}
 * @throws {VerifyError} `out-of-range`
 */
export function tilePath(level, index, width = TILE_WIDTH) {
  let prefix;
  if (level === "entries") {
    prefix = "tile/entries/";
  } else {
    if (!Number.isInteger(level) || level < 0 || level > MAX_TILE_LEVEL) fail("out-of-range", `tile level ${level} is not 0 to 63`);
    prefix = `tile/${level}/`;
  }
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) fail("out-of-range", `tile width ${width} is not 1 to 256`);
  const digits = toU64(index, "tile index").toString();
  // Left-pad to whole groups of three, then prefix all groups but the last.
  const padded = digits.padStart(Math.ceil(digits.length / 3) * 3, "0");
  const groups = padded.match(/.{3}/g);
  const n = groups.map((g, k) => (k < groups.length - 1 ? `x${g}` : g)).join("/");
  return prefix + n + (width === TILE_WIDTH ? "" : `.p/${width}`);
}

/**
 * The path of entry bundle `index`: `tilePath("entries", index, width)`.
 * @param {bigint|number} index
 * @param {number} [width=256]
 * @returns {string}
 */
export function entriesPath(index, width = TILE_WIDTH) {
  return tilePath("entries", index, width);
}

/**
 * The width of the partial tile at `level` for a tree of `size` entries,
 * `floor(size / 256^level) mod 256`; 0 when that level has none.
 * @param {bigint|number} size
 * @param {number} level
 * @returns {number}
 */
export function partialWidth(size, level) {
  const n = toU64(size, "tree size");
  return Number((n >> BigInt(TILE_HEIGHT * level)) % BigInt(TILE_WIDTH));
}

/**
 * The path of the tile (or bundle) `index` at `level` as a client must ask
 * for it for a tree of `size` entries: full if the tree reaches the tile's
 * end, else partial with the width the tree has there.
 * @param {number|"entries"} level
 * @param {bigint|number} index
 * @param {bigint|number} size
 * @returns {string}
 * @throws {VerifyError} `out-of-range` if the tree has no such tile
 */
export function tilePathForSize(level, index, size) {
  const n = toU64(size, "tree size");
  const i = toU64(index, "tile index");
  const l = level === "entries" ? 0 : level;
  const shift = BigInt(TILE_HEIGHT * (l + 1));
  if ((i + 1n) << shift <= n) return tilePath(level, i, TILE_WIDTH);
  const w = partialWidth(n, l);
  if (w === 0 || i !== n >> shift) fail("out-of-range", `a tree of size ${n} has no tile ${i} at level ${level}`);
  return tilePath(level, i, w);
}

/**
 * Splits an entry bundle, a sequence of big-endian uint16 length + entry
 * bytes with nothing else, into its entries. A bundle whose last entry does
 * not end exactly at its last byte is refused.
 * @param {Uint8Array} bytes
 * @returns {Uint8Array[]}
 * @throws {VerifyError} `malformed-bundle`
 */
export function parseBundle(bytes) {
  const b = asBytes(bytes, "bundle");
  const entries = [];
  let at = 0;
  while (at < b.length) {
    if (b.length - at < 2) fail("malformed-bundle", `entry ${entries.length}: length prefix cut short`);
    const len = (b[at] << 8) | b[at + 1];
    at += 2;
    if (b.length - at < len) fail("malformed-bundle", `entry ${entries.length}: ${len} bytes run past the end`);
    entries.push(b.subarray(at, at + len));
    at += len;
  }
  return entries;
}

/**
 * The leaf hash of every entry of a bundle, to compare with the level-0 tile.
 * @param {Uint8Array} bytes
 * @returns {Promise<Uint8Array[]>}
 */
export async function leafHashesFromBundle(bytes) {
  return Promise.all(parseBundle(bytes).map((e) => leafHash(e)));
}

/**
 * Splits a tile into its hashes, refusing a tile of the wrong length.
 * @param {Uint8Array} bytes
 * @param {number} width the number of hashes it must hold
 * @returns {Uint8Array[]}
 * @throws {VerifyError} `malformed-tile`
 */
export function parseTile(bytes, width) {
  const b = asBytes(bytes, "tile");
  if (b.length !== width * HASH_LEN) fail("malformed-tile", `tile is ${b.length} bytes, not ${width} hashes (${width * HASH_LEN} bytes)`);
  const out = [];
  for (let k = 0; k < width; k++) out.push(b.subarray(k * HASH_LEN, (k + 1) * HASH_LEN));
  return out;
}

/**
 * Recomputes the root of the first `size` entries from the log's tiles, so
 * a page can check the live log against a checkpoint (compare the result
 * with its root).
 *
 * The tree of `size` leaves is its complete subtrees of the sizes of the
 * powers of two in `size`, largest first; one of height `h` is `2^(h mod 8)`
 * consecutive hashes of tile level `floor(h / 8)`, hashed pairwise up to
 * one; RFC 9162 combines them right to left. Each tile is fetched once,
 * full or partial as {@link tilePathForSize} names it, and must hold
 * exactly the hashes its path says.
 *
 * @param {bigint|number} size
 * @param {(path: string) => Promise<Uint8Array>} fetchTile fetches a path
 *   relative to the log's prefix (e.g. "tile/0/001.p/44")
 * @returns {Promise<Uint8Array>} the root hash
 * @throws {VerifyError} `malformed-tile`; whatever `fetchTile` throws
 */
export async function rootFromTiles(size, fetchTile) {
  const n = toU64(size, "tree size");
  if (n === 0n) return EMPTY_ROOT.slice();
  const tiles = new Map();
  const hashesOf = async (level, index) => {
    const path = tilePathForSize(level, index, n);
    if (!tiles.has(path)) {
      const width = Number(/\.p\/(\d+)$/.exec(path)?.[1] ?? TILE_WIDTH);
      tiles.set(path, parseTile(await fetchTile(path), width));
    }
    return tiles.get(path);
  };
  const subtrees = [];
  let start = 0n;
  for (let h = 63; h >= 0; h--) {
    if (((n >> BigInt(h)) & 1n) === 0n) continue;
    const level = Math.floor(h / TILE_HEIGHT);
    const count = 1 << (h % TILE_HEIGHT);
    const position = start >> BigInt(TILE_HEIGHT * level);
    const tile = await hashesOf(level, position / BigInt(TILE_WIDTH));
    const first = Number(position % BigInt(TILE_WIDTH));
    let row = tile.slice(first, first + count);
    while (row.length > 1) {
      const up = [];
      for (let k = 0; k < row.length; k += 2) up.push(await nodeHash(row[k], row[k + 1]));
      row = up;
    }
    subtrees.push(row[0]);
    start += 1n << BigInt(h);
  }
  let root = subtrees.pop();
  while (subtrees.length > 0) root = await nodeHash(subtrees.pop(), root);
  return root;
}

// ---------------------------------------------------------------------------
// Gateway receipts
// ---------------------------------------------------------------------------

/**
 * @typedef {object} Step
 * @property {string} step a stable name: `entry-hash`, `envelope-id`,
 *   `log-signature`, `tree-size`, `inclusion`, `cosignature <name>`, `quorum`
 * @property {boolean} ok whether the step found nothing wrong
 * @property {string} detail what was checked, or exactly what failed
 * @property {string} [status] for cosignature steps: `verified`,
 *   `unsupported`, `absent` or `invalid`
 * @property {bigint} [time] for a verified cosignature, its timestamp
 */

/**
 * Verifies a gateway receipt
 * `{id, log_index, tree_size, leaf_hash, inclusion_proof, checkpoint, entry}`
 * and says, step by step, what was checked. It stops at the first failing
 * step, whose `detail` says what failed; the receipt verifies if and only
 * if the last step returned is `ok`.
 *
 * Steps, in order:
 * 1. `entry-hash`: `entry` (base64) hashes to `leaf_hash`;
 * 2. `envelope-id`: the entry is a gateway entry logging envelope `id` (as
 *    the Rust verifier: without it a proof would hold for any id);
 * 3. `log-signature`: `checkpoint` is signed by the log's key;
 * 4. `tree-size`: the checkpoint's size is `tree_size`;
 * 5. `inclusion`: the proof leads from the leaf at `log_index` to the
 *    checkpoint's root;
 * 6. `cosignature <name>`, one per distinct witness key: `verified` (ok),
 *    `unsupported` (ML-DSA-44, present but not verifiable here: ok, not
 *    counted), `absent` (ok, not counted) or `invalid` (a line from that
 *    key that does not verify: fails);
 * 7. `quorum`: at least `quorum` witnesses verified.
 *
 * @param {object} receipt the receipt JSON, parsed
 * @param {string|VerifierKey} logVkey the log's verifier key
 * @param {Array<string|VerifierKey>} [witnessVkeys=[]] witness verifier keys
 * @param {number} [quorum=0] how many witnesses must have cosigned
 * @returns {Promise<Step[]>}
 */
export async function verifyReceipt(receipt, logVkey, witnessVkeys = [], quorum = 0) {
  const steps = [];
  const pass = (step, detail, extra = {}) => {
    steps.push({ step, ok: true, detail, ...extra });
    return true;
  };
  const stop = (step, detail, extra = {}) => {
    steps.push({ step, ok: false, detail, ...extra });
    return false;
  };
  const why = (e) => (e instanceof Error ? e.message : String(e));
  if (!Array.isArray(witnessVkeys)) throw new TypeError("witnessVkeys must be an array of verifier keys");
  const r = receipt !== null && typeof receipt === "object" ? receipt : {};

  // 1. The entry is the proven leaf.
  let entry;
  let leaf;
  try {
    if (typeof r.entry !== "string") fail("bad-receipt", "receipt has no entry");
    try {
      entry = base64Decode(r.entry);
    } catch {
      fail("bad-receipt", "entry is not standard base64");
    }
    if (typeof r.leaf_hash !== "string") fail("bad-receipt", "receipt has no leaf_hash");
    leaf = decodeHash(r.leaf_hash, "leaf_hash");
    if (!bytesEqual(await leafHash(entry), leaf)) fail("leaf-mismatch", "entry does not hash to leaf_hash");
  } catch (e) {
    stop("entry-hash", why(e));
    return steps;
  }
  pass("entry-hash", `the ${entry.length}-byte entry hashes to leaf_hash ${bytesToHex(leaf)}`);

  // 2. The entry logs this envelope.
  try {
    let logged;
    try {
      logged = JSON.parse(strictUtf8.decode(entry));
    } catch {
      fail("bad-entry", "entry is not a gateway log entry (not JSON)");
    }
    if (logged === null || typeof logged !== "object" || Array.isArray(logged)) fail("bad-entry", "entry is not a gateway log entry (not a JSON object)");
    if (logged.v !== 1) fail("bad-entry", `entry version ${JSON.stringify(logged.v)} is not 1`);
    if (typeof r.id !== "string") fail("bad-receipt", "receipt has no id");
    if (logged.envelope !== r.id) fail("wrong-envelope", `the entry logs envelope ${JSON.stringify(logged.envelope)}, not the receipt's id ${JSON.stringify(r.id)}`);
  } catch (e) {
    stop("envelope-id", why(e));
    return steps;
  }
  pass("envelope-id", `the entry logs envelope ${r.id}`);

  // 3. The checkpoint is the log's.
  let checkpoint;
  let logKey;
  try {
    try {
      logKey = await asKey(logVkey);
    } catch (e) {
      fail("bad-log-key", `the log's verifier key is not usable: ${why(e)}`);
    }
    if (typeof r.checkpoint !== "string") fail("bad-receipt", "receipt has no checkpoint");
    checkpoint = await verifyNote(r.checkpoint, logKey);
  } catch (e) {
    stop("log-signature", why(e));
    return steps;
  }
  pass("log-signature", `checkpoint of ${checkpoint.origin} at size ${checkpoint.size} is signed by ${logKey.name}+${bytesToHex(logKey.keyHash)}`);

  // 4. The proof is for the checkpoint's size.
  let treeSize;
  try {
    treeSize = toU64(r.tree_size, "tree_size");
  } catch (e) {
    stop("tree-size", why(e));
    return steps;
  }
  if (treeSize !== checkpoint.size) {
    stop("tree-size", `tree_size ${treeSize} is not the checkpoint's size ${checkpoint.size}`);
    return steps;
  }
  pass("tree-size", `tree_size ${treeSize} is the checkpoint's size`);

  // 5. The leaf is in the checkpoint's tree.
  let index;
  try {
    index = toU64(r.log_index, "log_index");
    if (!Array.isArray(r.inclusion_proof)) fail("bad-receipt", "inclusion_proof is not a list");
    const path = r.inclusion_proof.map((h, k) => decodeHash(h, `inclusion_proof[${k}]`));
    await verifyInclusion(leaf, index, treeSize, path, checkpoint.root);
  } catch (e) {
    stop("inclusion", `the inclusion proof does not verify: ${why(e)}`);
    return steps;
  }
  pass("inclusion", `entry ${index} is included in the tree of size ${treeSize} (root ${bytesToHex(checkpoint.root)})`);

  // 6. Witnesses, each distinct (name, key hash) once.
  let verified = 0;
  const seen = new Set();
  for (const [k, wk] of witnessVkeys.entries()) {
    let key;
    try {
      key = await asKey(wk);
    } catch (e) {
      stop(`cosignature #${k}`, `witness key ${k} is not usable: ${why(e)}`, { status: "invalid" });
      return steps;
    }
    const id = `${key.name}+${bytesToHex(key.keyHash)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const step = `cosignature ${key.name}`;
    try {
      const result = await verifyCosignature(r.checkpoint, key);
      if (result.unsupported) {
        pass(step, `${key.alg} cosignature by ${key.name} present but not verifiable here (WebCrypto has no ${key.alg}); not counted`, { status: "unsupported" });
      } else {
        verified++;
        pass(step, `cosigned by ${key.name} at ${describeTime(result.time)}`, { status: "verified", time: result.time });
      }
    } catch (e) {
      if (e instanceof VerifyError && e.code === "no-signature") {
        pass(step, `no cosignature by ${key.name}; not counted`, { status: "absent" });
      } else {
        stop(step, why(e), { status: "invalid" });
        return steps;
      }
    }
  }

  // 7. Quorum.
  if (!Number.isSafeInteger(quorum) || quorum < 0) {
    stop("quorum", `quorum ${quorum} is not a non-negative integer`);
  } else if (quorum > seen.size) {
    stop("quorum", `a quorum of ${quorum} is impossible with ${seen.size} distinct witnesses`);
  } else if (verified < quorum) {
    stop("quorum", `${verified} of the ${seen.size} witnesses verified, ${quorum} required`);
  } else {
    pass("quorum", quorum === 0 && seen.size === 0 ? "no witnesses required" : `${verified} of the ${seen.size} witnesses verified, ${quorum} required`);
  }
  return steps;
}

function describeTime(t) {
  if (t === 0n) return "time 0 (no statement on time)";
  const ms = t * 1000n;
  const date = ms <= 8640000000000000n ? new Date(Number(ms)).toISOString() : "a time beyond dates";
  return `${date} (POSIX ${t})`;
}
