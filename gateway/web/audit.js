// SPDX-License-Identifier: Apache-2.0
/**
 * @file The auditor's page: the log as its public files show it, an entry
 * explorer, and a receipt verifier. Every check runs here, through
 * `tlog.js`, against keys the auditor typed or pinned in this browser;
 * the server is asked only for files anyone may fetch (`/checkpoint`,
 * `/tile/...`), never for a proof. The one thing it says in its own words,
 * what it last heard from each witness (`/audit/witnesses`), is shown as
 * such, beside the cosignatures that prove it.
 */

import * as tlog from "./tlog.js";

/** How often the checkpoint is read again, for live updates. */
const POLL_MS = 2000;
/** Entries shown at once in the explorer. */
const PAGE = 20;
/** Where pinned keys are kept (this browser only). */
const PINNED = "xgate.audit.keys";

const $ = (id) => document.getElementById(id);
const text = (node, value) => {
  node.textContent = value;
  return node;
};
const cell = (row, value, className) => {
  const td = text(row.insertCell(), value);
  if (className) td.className = className;
  return td;
};
const why = (e) => (e instanceof Error ? e.message : String(e));
const utc = (seconds) => new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");

/** The log as last read: its checkpoint note and what it says. */
let current = null;
/** The newest index the explorer shows, or null to follow the log. */
let shownFrom = null;

/** The keys the auditor trusts, from the form. */
function keys() {
  return {
    log: $("log-key").value.trim(),
    witnesses: $("witness-keys").value.split("\n").map((l) => l.trim()).filter(Boolean),
    quorum: Math.max(0, Number.parseInt($("quorum").value, 10) || 0),
  };
}

function loadPinned() {
  try {
    const saved = JSON.parse(localStorage.getItem(PINNED) ?? "null");
    if (saved) {
      $("log-key").value = saved.log ?? "";
      $("witness-keys").value = (saved.witnesses ?? []).join("\n");
      $("quorum").value = String(saved.quorum ?? 0);
    }
  } catch {
    // A corrupt entry is ignored: the auditor types the keys again.
  }
}

function pin() {
  localStorage.setItem(PINNED, JSON.stringify(keys()));
  text($("pin-status"), "Pinned in this browser.");
  refresh();
}

/** Fetches one public file of the log; `null` if it does not exist (404). */
async function fetchFile(path) {
  const response = await fetch(`/${path}`, { cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`GET /${path}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * A tile or bundle as `path` names it. A partial one (`.p/W`) of an older
 * tree is replaced as the log grows, by a wider partial or the full tile,
 * whose first W items are the same (tlog-tiles: "clients MAY fetch the
 * full tile ... as a fallback"): then the tile as the newest checkpoint
 * names it is fetched and cut to the W items asked for.
 */
async function fetchTile(path) {
  const found = await fetchFile(path);
  if (found) return found;
  const partial = /^tile\/(\d+|entries)\/((?:x\d{3}\/)*\d{3})\.p\/(\d+)$/.exec(path);
  if (!partial || !current) throw new Error(`${path} is not served`);
  const level = partial[1] === "entries" ? "entries" : Number(partial[1]);
  const index = BigInt(partial[2].replaceAll("x", "").replaceAll("/", ""));
  const width = Number(partial[3]);
  const now = tlog.tilePathForSize(level, index, current.checkpoint.size);
  const wider = (await fetchFile(now)) ?? (await fetchFile(tlog.tilePath(level, index)));
  if (!wider) throw new Error(`neither ${path} nor a wider copy of it is served`);
  if (level !== "entries") return wider.subarray(0, width * tlog.HASH_LEN);
  // A bundle: its first `width` entries, each a 2-byte length and bytes.
  let end = 0;
  for (let k = 0; k < width; k++) {
    if (end + 2 > wider.length) throw new Error(`${now} holds fewer than ${width} entries`);
    end += 2 + ((wider[end] << 8) | wider[end + 1]);
  }
  return wider.subarray(0, end);
}

/** Reads the checkpoint and shows it, checked with the pinned keys. */
async function refresh() {
  let note;
  try {
    const bytes = await fetchFile("checkpoint");
    if (!bytes) {
      text($("log-status"), "The log has published no checkpoint yet.");
      return;
    }
    note = new TextDecoder().decode(bytes);
  } catch (e) {
    text($("log-status"), `Cannot read the checkpoint: ${why(e)}`).className = "bad";
    return;
  }
  const grew = current === null || current.note !== note;
  let checkpoint;
  try {
    checkpoint = tlog.parseCheckpoint(tlog.parseNote(note).body);
  } catch (e) {
    text($("log-status"), `The checkpoint is malformed: ${why(e)}`).className = "bad";
    return;
  }
  current = { note, checkpoint };
  text($("log-origin"), checkpoint.origin);
  text($("log-size"), `${checkpoint.size} entries`);
  text($("log-root"), tlog.base64Encode(checkpoint.root));
  const { log, witnesses } = keys();
  if (log) {
    try {
      await tlog.verifyNote(note, log);
      text($("log-signature"), "signed by the key you trust").className = "ok";
    } catch (e) {
      text($("log-signature"), `NOT signed by the key you trust: ${why(e)}`).className = "bad";
    }
  } else {
    text($("log-signature"), "no log key pinned: not checked").className = "muted";
  }
  await showCosignatures(note, witnesses);
  await showWitnessStates(witnesses);
  text($("log-status"), `Read at ${new Date().toISOString()}; updates every ${POLL_MS / 1000} s.`).className = "";
  if (grew && shownFrom === null) await showEntries(null);
}

/** Lists each cosignature line of `note` and checks it with a pinned key. */
async function showCosignatures(note, witnessKeys) {
  const body = $("witnesses").tBodies[0];
  body.replaceChildren();
  const parsed = await Promise.all(
    witnessKeys.map((k) => tlog.parseVerifierKey(k).catch(() => null)),
  );
  const signatures = tlog.parseNote(note).signatures;
  const origin = current.checkpoint.origin;
  for (const line of signatures) {
    if (line.name === origin && line.sig.length === 64) continue; // the log's own
    const row = body.insertRow();
    cell(row, line.name);
    let time = "–";
    try {
      time = `${utc(tlog.splitCosignature(line.sig).time)}`;
    } catch {
      // Not a cosignature (another kind of signature line).
    }
    cell(row, time);
    const key = parsed.find((k) => k && k.name === line.name && tlog.bytesEqual(k.keyHash, line.keyHash));
    if (!key) {
      cell(row, "no key pinned", "muted");
      continue;
    }
    try {
      const result = await tlog.verifyCosignature(note, key);
      if (result.unsupported) cell(row, `${result.alg}: cannot be checked in a browser`, "muted");
      else cell(row, "verified", "ok");
    } catch (e) {
      cell(row, `INVALID: ${why(e)}`, "bad");
    }
  }
  if (body.rows.length === 0) {
    const row = body.insertRow();
    const td = cell(row, "No witness has cosigned this checkpoint.", "muted");
    td.colSpan = 3;
  }
}

/**
 * Each witness as this gateway last heard from it (GET /audit/witnesses).
 * This is the operator's word, not a proof: the cosignatures above are
 * what can be checked; this says why one may be missing.
 */
async function showWitnessStates(witnessKeys) {
  const body = $("witness-states").tBodies[0];
  let board;
  try {
    const response = await fetch("/audit/witnesses", { cache: "no-store" });
    if (!response.ok) throw new Error(`GET /audit/witnesses: ${response.status}`);
    board = await response.json();
  } catch (e) {
    text($("witness-quorum"), `Cannot read the witnesses' state: ${why(e)}`).className = "bad";
    return;
  }
  const { witnesses: needed, peers } = board.quorum ?? {};
  text($("witness-quorum"), board.witnesses.length === 0
    ? "This log asks no witness to cosign."
    : `This log publishes a checkpoint once ${needed} configured witness(es) and ${peers} peer gateway(s) cosigned it.`).className = "";
  body.replaceChildren();
  for (const w of board.witnesses) {
    const row = body.insertRow();
    cell(row, w.name);
    cell(row, w.peer ? "peer gateway" : "witness");
    cell(row, String(w.cosigned_size));
    cell(row, w.outcome.replaceAll("_", " "), w.outcome === "cosigned" ? "ok" : w.outcome === "not_asked_yet" ? "muted" : "bad");
    cell(row, String(w.failures));
    cell(row, w.last_asked == null ? "–" : utc(w.last_asked));
    const pinned = witnessKeys.some((k) => k.trim() === w.vkey);
    cell(row, pinned ? "pinned" : "not pinned", pinned ? "ok" : "muted");
  }
  if (body.rows.length === 0) {
    const row = body.insertRow();
    cell(row, "No witnesses.", "muted").colSpan = 7;
  }
}

/** The entries with indices in [first, last], read from their bundles. */
async function readEntries(first, last, size) {
  const out = new Map();
  for (let bundle = last >> 8n; bundle >= first >> 8n; bundle--) {
    const start = bundle << 8n;
    const width = size - start >= 256n ? 256n : size - start;
    const items = tlog.parseBundle(await fetchTile(tlog.entriesPath(bundle, Number(width))));
    for (let k = 0n; k < width; k++) {
      const index = start + k;
      if (index >= first && index <= last) out.set(index, items[Number(k)]);
    }
  }
  return out;
}

/** Shows up to PAGE entries, newest first, from index `from` (null: the newest). */
async function showEntries(from) {
  const body = $("entries").tBodies[0];
  if (!current) return;
  const size = current.checkpoint.size;
  if (size === 0n) {
    body.replaceChildren();
    return;
  }
  let last = from === null ? size - 1n : from;
  if (last >= size) last = size - 1n;
  const first = last >= BigInt(PAGE - 1) ? last - BigInt(PAGE - 1) : 0n;
  let entries;
  try {
    entries = await readEntries(first, last, size);
  } catch (e) {
    body.replaceChildren();
    const td = cell(body.insertRow(), `Cannot read the entries: ${why(e)}`, "bad");
    td.colSpan = 7;
    return;
  }
  body.replaceChildren();
  for (let index = last; index >= first; index--) {
    const row = body.insertRow();
    cell(row, String(index));
    let logged = null;
    try {
      logged = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(entries.get(index)));
    } catch {
      // Not a gateway entry: shown as such.
    }
    if (!logged || typeof logged !== "object") {
      const td = cell(row, "(not a gateway entry)", "muted");
      td.colSpan = 6;
    } else {
      cell(row, String(logged.kind ?? ""));
      cell(row, String(logged.iss ?? ""));
      cell(row, String(logged.aud ?? ""));
      cell(row, Number.isInteger(logged.time) ? utc(logged.time) : "");
      cell(row, String(logged.decision ?? ""));
      cell(row, String(logged.envelope ?? "").slice(0, 16), "hash");
    }
    if (index === 0n) break;
  }
}

/** Verifies the receipt in the form, step by step, then against the live log. */
async function verify() {
  const list = $("steps");
  list.replaceChildren();
  const verdict = $("verdict");
  const show = (ok, step, detail) => {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "bad";
    li.append(`${ok ? "✓" : "✗"} ${step}: `);
    const span = document.createElement("span");
    span.className = "detail";
    li.append(text(span, detail));
    list.append(li);
  };
  const { log, witnesses, quorum } = keys();
  if (!log) {
    text(verdict, "Type or pin the log's verifier key first: a receipt is only as good as the key it is checked with.").className = "bad";
    return;
  }
  let receipt;
  try {
    receipt = JSON.parse($("receipt").value);
  } catch (e) {
    text(verdict, `The receipt is not JSON: ${why(e)}`).className = "bad";
    return;
  }
  let steps;
  try {
    steps = await tlog.verifyReceipt(receipt, log, witnesses, quorum);
  } catch (e) {
    text(verdict, `Cannot verify: ${why(e)}`).className = "bad";
    return;
  }
  for (const s of steps) show(s.ok, s.step, s.detail);
  const failed = steps.find((s) => !s.ok);
  if (failed) {
    text(verdict, `REJECTED at ${failed.step}: ${failed.detail}`).className = "bad";
    return;
  }
  // The log this page reads must still hold the tree the receipt names.
  try {
    const checkpoint = tlog.parseCheckpoint(tlog.parseNote(receipt.checkpoint).body);
    await refresh();
    if (!current || current.checkpoint.size < checkpoint.size) {
      throw new Error(`the log has published ${current ? current.checkpoint.size : 0} entries, fewer than the receipt's ${checkpoint.size}`);
    }
    const root = await tlog.rootFromTiles(checkpoint.size, fetchTile);
    if (!tlog.bytesEqual(root, checkpoint.root)) {
      throw new Error(`the log's tiles give another root at size ${checkpoint.size}: this log is not the one that signed the receipt, or it was rewritten`);
    }
    show(true, "live log", `the log served here holds the same tree at size ${checkpoint.size}`);
  } catch (e) {
    show(false, "live log", why(e));
    text(verdict, `REJECTED at live log: ${why(e)}`).className = "bad";
    return;
  }
  text(verdict, "Verified: every step passed.").className = "ok";
}

async function readFile() {
  const file = $("receipt-file").files[0];
  if (file) $("receipt").value = await file.text();
}

/** A receipt file dropped on the verifier: read, then verified at once. */
async function dropped(event) {
  event.preventDefault();
  $("receipt-drop").classList.remove("dragging");
  const file = event.dataTransfer?.files?.[0];
  if (!file) return;
  $("receipt").value = await file.text();
  await verify();
}

function poll() {
  refresh().finally(() => setTimeout(poll, POLL_MS));
}

loadPinned();
$("pin").addEventListener("click", pin);
$("verify").addEventListener("click", verify);
$("receipt-file").addEventListener("change", readFile);
for (const type of ["dragenter", "dragover"]) {
  $("receipt-drop").addEventListener(type, (event) => {
    event.preventDefault();
    $("receipt-drop").classList.add("dragging");
  });
}
$("receipt-drop").addEventListener("dragleave", () => $("receipt-drop").classList.remove("dragging"));
$("receipt-drop").addEventListener("drop", dropped);
$("entry-jump").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("entry-index").value.trim();
  shownFrom = /^\d+$/.test(value) ? BigInt(value) : null;
  showEntries(shownFrom);
});
$("entry-newest").addEventListener("click", () => {
  shownFrom = null;
  $("entry-index").value = "";
  showEntries(null);
});
poll();
