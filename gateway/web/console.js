// The agency console's page. Everything it does goes through the console
// process on loopback (`xgate console`), which holds the agency's keys:
// POST /api/run runs one `xgate` command (signing, sealing and checking
// exactly as the command line does) and answers its JSON output (or, for
// `contracts.explain`, its text lines as strings); GET /api/events relays
// the agency's reconciliation stream. The page itself holds no key; it
// verifies receipts with tlog.js against the log key of the registry the
// console holds (never a key the gateway names), a contract's act (a
// notice no agency signed) included.
//
// The token comes in the address's fragment (never sent to a server), is
// kept for this tab only, and goes with every /api/ call.

import {
  base64Decode, bytesEqual, bytesToHex, decodeHash, leafHash, verifyInclusion, verifyNote, verifyReceipt,
} from "/console/tlog.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "xgate.console.token";
const REFRESH_MS = 5000;

let session = null;

// ---- the console's API ------------------------------------------------------

function token() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const given = hash.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    // Out of the address bar, history and any screenshot.
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class Refused extends Error {
  constructor(status, code, message, lines = []) {
    super(message);
    this.status = status;
    this.code = code;
    // What the command printed before it failed: for an action that
    // signs, what was sent (a receipt), so the page never says "refused"
    // of something the gateway took.
    this.lines = lines;
  }
}

async function api(path, init = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(init.headers || {}) };
  return fetch(path, { ...init, headers, cache: "no-store" });
}

/**
 * Runs one action; resolves to the command's JSON lines (text lines, as
 * strings, for an action whose command prints text). With `partial`,
 * the lines a command printed before failing are its answer (`xgate
 * inbox` prints every envelope, the refused ones with their reason, then
 * exits 1).
 */
async function run(action, fields = {}, { partial = false } = {}) {
  const response = await api("/api/run", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ action, fields }),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.ok) return answer.lines || [];
  if (partial && answer.lines?.length) return answer.lines;
  const e = answer.error || {};
  throw new Refused(response.status, e.code || "unknown", e.message || `HTTP ${response.status}`, answer.lines || []);
}

/**
 * Runs an action the person asked for, says how it went, hands its lines
 * to `then`, and shows the state after it. Resolves to its lines, or null
 * if it failed.
 */
async function act(label, action, fields, then) {
  let lines = null;
  try {
    lines = await run(action, fields);
    say(`${label}: done`);
    await then?.(lines);
  } catch (e) {
    say(e.lines?.length
      ? `${label}: sent, then the console failed: ${refusal(e)}`
      : `${label} refused: ${refusal(e)}`, false);
  }
  await refresh();
  return lines;
}

// ---- small DOM helpers ------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: String(columns), class: "muted" }, empty))]));
}

/**
 * Shows one row per item of `items` in `tbody`, keeping each row (and what
 * is typed in it, and the focus) from one refresh to the next: `build`
 * makes a row the first time its key is seen, `update` refreshes it.
 */
function keyedRows(tbody, cache, items, key, build, update, empty, columns) {
  const rows = items.map((item) => {
    const k = key(item);
    let row = cache.get(k);
    if (!row) {
      row = build(item);
      cache.set(k, row);
    }
    update?.(row, item);
    return row.tr;
  });
  const keys = new Set(items.map(key));
  for (const k of [...cache.keys()]) if (!keys.has(k)) cache.delete(k);
  // The same rows in the same order stay in place (a row taken out and
  // put back would lose the focus).
  if (!rows.length || rows.length !== tbody.rows.length || rows.some((tr, i) => tbody.rows[i] !== tr)) {
    fill(tbody, rows, empty, columns);
  }
}

function stored(key) {
  try {
    const value = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

function when(seconds) {
  return typeof seconds === "number" ? new Date(seconds * 1000).toISOString().replace(".000Z", "Z") : "–";
}

function say(text, ok = true) {
  const status = $("status");
  status.textContent = text;
  status.className = ok ? "ok" : "bad";
}

function refusal(e) {
  return e instanceof Refused ? `${e.message} (${e.code})` : e.message;
}

/** The signed claims of a compact JWS the console already checked. */
function claims(jws) {
  try {
    const part = jws.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

function agencyOptions(select) {
  const others = session.agencies.filter((a) => a.id !== session.agency);
  select.replaceChildren(...others.map((a) => el("option", { value: a.id }, `${a.name} (${a.id})`)));
}

/** Submits a form as an action; its answer goes to `then`. */
function onSubmit(form, action, fieldsOf, then) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const fields = fieldsOf(new FormData(form));
    try {
      await act(action, action, fields, (lines) => then?.(lines, fields));
    } finally {
      button.disabled = false;
    }
  });
}

// ---- what the page shows ------------------------------------------------------

let inbox = [];

async function showInbox() {
  inbox = await run("inbox", {}, { partial: true });
  const rows = await Promise.all(inbox.map(async (item) => {
    if (item.kind === "contract.act" && !item.refused) return actRow(item);
    const checked = item.refused
      ? el("span", { class: "bad" }, `refused: ${item.refused}`)
      : el("span", { class: "ok" }, item.sealed ? "checked, sealed part opened" : "checked");
    return el("tr", {},
      el("td", {}, item.receipt?.log_index ?? item.id),
      el("td", {}, item.from),
      el("td", {}, item.kind),
      el("td", {}, checked),
      el("td", { class: "body mono" }, item.body ? JSON.stringify(item.body) : "–"));
  }));
  fill($("inbox").tBodies[0], rows, "Nothing waiting.", 5);
}

// ---- contracts' acts ------------------------------------------------------------

/**
 * A contract's act in the inbox, as a row of its own: what was done, for
 * which contract, about what, how it went and which entry triggered it,
 * with its receipt checked here. No JWS: no agency signed it.
 */
async function actRow(item) {
  const a = item.body || {};
  const about = [
    a.tag && `tag ${a.tag}`,
    a.request && `request ${a.request}`,
    a.to && `to ${a.to}`,
    a.deadline && `deadline ${a.deadline}${typeof a.due === "number" ? `, due ${when(a.due)}` : ""}`,
  ].filter(Boolean);
  const outcome = a.outcome === "done"
    ? el("span", { class: "ok" }, "done")
    : el("span", { class: "bad" }, `failed (${a.error ?? "no code"})`);
  const why = el("button", { type: "button", class: "explain", onclick: () => explain(a.trigger) }, `Why: explain entry ${a.trigger}`);
  return el("tr", { class: "act", "data-act": String(item.receipt?.log_index ?? ""), "data-trigger": String(a.trigger) },
    el("td", {}, item.receipt?.log_index ?? "–"),
    el("td", {}, item.from),
    el("td", {}, "contract.act"),
    el("td", {}, await actReceiptCheck(item)),
    el("td", { class: "body" },
      el("strong", {}, a.act), " by contract ", el("code", { class: "name" }, a.contract),
      about.length ? `: ${about.join(", ")}` : "", "; ", outcome,
      `; triggered by entry ${a.trigger} at ${when(a.time)} `, why));
}

/** Each act notice's receipt check, by id, done once. */
const actChecks = new Map();

/** Whether an act notice's receipt proves that very act, checked here. */
async function actReceiptCheck(item) {
  if (!actChecks.has(item.id)) actChecks.set(item.id, checkActReceipt(item));
  const { ok, text } = await actChecks.get(item.id);
  return el("span", { class: ok === null ? "muted" : ok ? "ok" : "bad" }, text);
}

/**
 * A notice's receipt against the log key of the registry (or --log-key):
 * its entry is the act shown and hashes to the notice's id (what the
 * gateway filed it under), its checkpoint is signed by the log, and the
 * entry is in that tree. (tlog.js's verifyReceipt wants an envelope's
 * entry; an act's names none, so the same steps are taken here.)
 */
async function checkActReceipt(item) {
  const r = item.receipt || {};
  const key = keyFor(r.checkpoint);
  if (!key) {
    return { ok: null, text: `a contract's act, no signature; receipt held (index ${r.log_index}); your registry lists no key for its log, so its checkpoint's signature is not checked` };
  }
  try {
    const entry = base64Decode(String(r.entry ?? ""));
    const digest = bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", entry)));
    if (digest !== item.id || r.id !== item.id) return { ok: false, text: "the receipt is for another act" };
    if (JSON.stringify(JSON.parse(new TextDecoder().decode(entry))) !== JSON.stringify(item.body)) {
      return { ok: false, text: "the receipt's entry is not the act shown" };
    }
    const leaf = await leafHash(entry);
    if (!bytesEqual(leaf, decodeHash(String(r.leaf_hash ?? ""), "leaf_hash"))) {
      return { ok: false, text: "receipt refused: the entry does not hash to its leaf_hash" };
    }
    const checkpoint = await verifyNote(r.checkpoint, key);
    if (BigInt(r.tree_size) !== checkpoint.size) {
      return { ok: false, text: `receipt refused: tree_size ${r.tree_size} is not the checkpoint's size` };
    }
    const path = (r.inclusion_proof || []).map((h, k) => decodeHash(h, `inclusion_proof[${k}]`));
    await verifyInclusion(leaf, r.log_index, r.tree_size, path, checkpoint.root);
    return { ok: true, text: `a contract's act, no signature: receipt verified: entry ${r.log_index} in a tree of ${r.tree_size}` };
  } catch (e) {
    return { ok: false, text: `receipt refused: ${e.message}` };
  }
}

/** The contracts the gateway has in force (`xgate contracts list`). */
async function showContracts() {
  let contracts;
  try {
    contracts = await run("contracts.list");
  } catch (e) {
    fill($("contracts").tBodies[0], [], `Cannot read the contracts in force: ${refusal(e)}`, 4);
    return;
  }
  const rows = contracts.map((c) => {
    const params = [
      c.to && `to ${c.to}`,
      c.deadline && `deadline ${c.deadline}`,
      c.after_hours != null && `after ${c.after_hours} h`,
    ].filter(Boolean);
    return el("tr", { "data-contract": c.name },
      el("td", {}, el("code", { class: "name" }, c.name)),
      el("td", {}, c.on),
      el("td", { class: "cel" }, c.when),
      el("td", {}, c.do, params.length ? ` (${params.join(", ")})` : ""));
  });
  fill($("contracts").tBodies[0], rows, "No contracts in force.", 4);
}

let explaining = 0;

/** `xgate contracts explain ENTRY`: its lines, as the command prints them. */
async function explain(entry) {
  const box = $("explained");
  const mine = ++explaining;
  box.replaceChildren(el("p", { class: "muted" }, `Asking the gateway about entry ${entry}…`));
  let shown;
  try {
    const lines = await run("contracts.explain", { entry: String(entry) });
    shown = [
      el("h3", {}, `Why: entry ${entry} (xgate contracts explain ${entry})`),
      el("pre", { class: "explain" }, lines.map(String).join("\n")),
    ];
  } catch (e) {
    shown = [el("p", { class: "bad" }, `Cannot explain entry ${entry}: ${refusal(e)}`)];
  }
  if (mine !== explaining) return; // a later question's answer wins
  box.replaceChildren(...shown);
  box.scrollIntoView({ block: "nearest" });
}

const offerRows = new Map();

async function showOffers() {
  const offers = inbox.filter((i) => i.kind === "asset.transfer.offer" && i.body && !i.refused);
  const open = [];
  const seen = new Set();
  for (const item of offers) {
    const tag = item.body.tag;
    if (seen.has(tag)) continue;
    seen.add(tag);
    let view;
    try {
      [view] = await run("asset.show", { tag });
    } catch {
      continue;
    }
    if (!["offered", "awaiting_approval"].includes(view?.status) || view.offer?.to?.agency !== session.agency) continue;
    // The reason is the open offer's own, not an older offer's of the tag.
    const made = offers.find((i) => claims(i.jws).jti === view.offer.jti);
    open.push({ tag, view, reason: made?.body.reason ?? "" });
  }
  keyedRows($("offers").tBodies[0], offerRows, open, (o) => `${o.tag} ${o.view.offer.jti}`, ({ tag, view, reason }) => {
    const offer = view.offer.jti;
    const from = view.holder.agency;
    const location = el("input", { "aria-label": `Location for ${tag}`, placeholder: "where it will be" });
    const answer = (label, action, fields) => async (event) => {
      event.target.disabled = true;
      await act(`${label} ${tag}`, action, fields());
      event.target.disabled = false;
    };
    const row = {
      answer: el("td", {}),
      held: null,
      controls: [
        location, " ",
        el("button", { type: "button", class: "accept", onclick: answer("accept", "asset.accept", () => ({ tag, offer, from, ...(location.value ? { location: location.value } : {}) })) }, `Accept ${tag}`), " ",
        el("button", { type: "button", class: "reject", onclick: answer("reject", "asset.reject", () => ({ tag, offer, from })) }, `Reject ${tag}`)],
    };
    row.tr = el("tr", { "data-tag": tag },
      el("td", {}, el("strong", {}, tag), " ", el("span", { class: "muted" }, view.category)),
      el("td", {}, from),
      el("td", {}, view.offer.to.person),
      el("td", {}, reason),
      row.answer);
    return row;
  }, (row, { view }) => {
    // A contract holds the offer until a second person of the offering
    // agency approves it: it cannot be answered before.
    const held = view.status === "awaiting_approval";
    if (row.held === held) return;
    row.held = held;
    row.answer.replaceChildren(...(held
      ? [el("span", { class: "warn" }, `awaiting a second approval at ${view.holder.agency} (a contract's two-person rule)`)]
      : row.controls));
  }, "No open offers.", 5);
}

/** Each asset's row, kept across refreshes (an approver's name being
 * typed survives the page's refresh). */
const assetRows = new Map();

async function showAssets() {
  const [page] = await run("asset.list");
  const mine = (page?.assets || []).filter((a) => a.holder?.agency === session.agency);
  // An offer held for a second approval: the hold (the act to name, the
  // person who may not approve) is in the asset's own view.
  await Promise.all(mine.filter((a) => a.status === "awaiting_approval").map(async (a) => {
    try {
      const [view] = await run("asset.show", { tag: a.tag });
      a.offer = view?.offer ?? null;
    } catch {
      a.offer = null;
    }
  }));
  keyedRows($("assets").tBodies[0], assetRows, mine, (a) => a.tag, (a) => {
    const row = {
      category: el("td", {}), holder: el("td", {}), location: el("td", {}),
      status: el("span", { class: "status" }), decide: el("span", { class: "decide" }), hold: null,
    };
    row.tr = el("tr", { "data-tag": a.tag },
      el("td", {}, a.tag), row.category, row.holder, row.location,
      el("td", {}, row.status, row.decide),
      el("td", {}, el("button", { type: "button", onclick: () => showTimeline(a.tag) }, `Timeline of ${a.tag}`)));
    return row;
  }, (row, a) => {
    row.category.textContent = a.category;
    row.holder.textContent = `${a.holder.agency} / ${a.holder.person}`;
    row.location.textContent = a.location;
    row.status.textContent = a.status;
    const hold = a.status === "awaiting_approval" ? a.offer?.hold ?? null : null;
    if ((hold?.act ?? null) === row.hold) return;
    row.hold = hold?.act ?? null;
    row.decide.replaceChildren(...(hold ? decision(a.tag, a.offer, hold) : []));
  }, "You hold no assets.", 6);
}

/**
 * The controls deciding an offer a contract holds (the two-person rule):
 * the approver's name, and approve or deny (`xgate asset approve|deny`).
 */
function decision(tag, offer, hold) {
  const approver = el("input", { class: "approver", "aria-label": `Approver for ${tag}`, placeholder: `approver (not ${hold.actor})` });
  const decide = (label, action) => async (event) => {
    const name = approver.value.trim();
    if (!name) {
      say(`${label} of ${tag}: name the person deciding`, false);
      approver.focus();
      return;
    }
    event.target.disabled = true;
    await act(`${label} of ${tag}`, action, { tag, act: hold.act, approver: name });
    event.target.disabled = false;
  };
  return [
    el("span", { class: "muted" },
      `The offer to ${offer.to.agency} / ${offer.to.person} is held by a contract (act ${hold.act}) for a second person's approval: anyone of your agency but ${hold.actor}, who held it when it was offered. `),
    approver, " ",
    el("button", { type: "button", class: "approve", onclick: decide("approval", "asset.approve") }, `Approve ${tag}`), " ",
    el("button", { type: "button", class: "deny", onclick: decide("denial", "asset.deny") }, `Deny ${tag}`),
  ];
}

/** The log key of the registry (or --log-key) named as `note`'s origin. */
function keyFor(note) {
  const origin = String(note ?? "").split("\n", 1)[0];
  return (session.log_keys || []).find((k) => k.split("+", 1)[0] === origin) ?? null;
}

/** Whether `event`'s receipt proves that very event, checked here. */
async function receiptCheck(event) {
  const receipt = event.receipt;
  if (!receipt) return el("span", { class: "bad" }, "no receipt");
  if (receipt.id !== event.envelope || receipt.log_index !== event.log_index) {
    return el("span", { class: "bad" }, "the receipt is for another envelope or entry");
  }
  const key = keyFor(receipt.checkpoint);
  if (!key) {
    return el("span", { class: "muted" }, `receipt held (index ${receipt.log_index}); your registry lists no key for its log`);
  }
  const steps = await verifyReceipt(receipt, key);
  const failed = steps.find((s) => !s.ok);
  return failed
    ? el("span", { class: "bad" }, `receipt refused at ${failed.step}: ${failed.detail}`)
    : el("span", { class: "ok" }, `receipt verified: entry ${receipt.log_index} in a tree of ${receipt.tree_size}`);
}

async function showTimeline(tag) {
  const box = $("timeline");
  try {
    const [view] = await run("asset.show", { tag });
    const items = [];
    for (const event of view.chain || []) {
      items.push(el("li", {},
        el("strong", {}, event.kind), ` at ${when(event.time)} by ${event.by}`,
        event.holder ? `, holder ${event.holder.agency} / ${event.holder.person}` : "",
        ` (log index ${event.log_index}) `, await receiptCheck(event)));
    }
    box.replaceChildren(el("h3", {}, `Custody of ${tag}`), el("ol", {}, ...items));
  } catch (e) {
    box.replaceChildren(el("p", { class: "bad" }, `Cannot read ${tag}: ${refusal(e)}`));
  }
}

const OUTGOING_KEY = () => `xgate.console.requests.${session.agency}`;

/** A medical case's state as the page shows it. */
async function caseState(request) {
  try {
    const [view] = await run("medical.show", { request });
    return { state: view.status + (view.break_glass ? " (break the glass)" : ""), status: view.status };
  } catch (e) {
    return { state: refusal(e), status: null };
  }
}

async function showMedical() {
  const incoming = inbox.filter((i) => i.kind === "medical.request" && !i.refused);
  const rows = [];
  for (const item of incoming) {
    const request = claims(item.jws).jti;
    const { state, status } = await caseState(request);
    const approve = el("button", {
      type: "button",
      onclick: async (event) => {
        event.target.disabled = true;
        await act(`approval of ${request}`, "medical.approve", { request });
      },
    }, "Approve");
    rows.push(el("tr", {},
      el("td", { class: "mono" }, request),
      el("td", {}, item.from),
      el("td", {}, item.body?.purpose ?? ""),
      el("td", {}, state),
      el("td", {}, status === "awaiting-approval" ? approve : el("span", { class: "muted" }, "answered with xgate medical respond"))));
  }
  fill($("incoming").tBodies[0], rows, "No requests to you.", 5);

  const responses = inbox.filter((i) => i.kind === "medical.response" && !i.refused && i.receipt);
  const out = [];
  for (const { request, to } of stored(OUTGOING_KEY())) {
    const { state } = await caseState(request);
    const answers = responses
      .filter((r) => r.body?.request === request)
      .map((r) => el("button", { type: "button", onclick: () => openResponse(r.receipt.log_index) }, `Open answer ${r.receipt.log_index}`));
    out.push(el("tr", {}, el("td", { class: "mono" }, request), el("td", {}, to), el("td", {}, state), el("td", {}, ...(answers.length ? answers : ["none yet"]))));
  }
  fill($("outgoing").tBodies[0], out, "No requests sent from this console.", 4);
}

async function openResponse(response) {
  const box = $("opened");
  try {
    const [opened, bundle] = await run("medical.open", { response: String(response) });
    const entries = (bundle?.entry || []).map((e) => el("li", { class: "mono" }, JSON.stringify(e.resource ?? e)));
    box.replaceChildren(
      el("h3", {}, `Answer ${response} from ${opened.from}, decrypted here`),
      el("p", { class: "ok" }, "Signature checked against the holder's registered key; bundle validated."),
      el("ul", {}, ...entries));
  } catch (e) {
    box.replaceChildren(el("p", { class: "bad" }, `Cannot open answer ${response}: ${refusal(e)}`));
  }
}

/** Each pending review's row, kept across refreshes: the outcome chosen
 * and the note being typed (and the focus) survive the page's refresh. */
const reviewRows = new Map();

async function showReviews() {
  let reviews;
  try {
    reviews = await run("medical.reviews");
  } catch (e) {
    say(`reviews: ${refusal(e)}`, false);
    return; // what is shown stays, with what the reviewer typed
  }
  const list = reviews.flatMap((l) => l.reviews ?? []);
  keyedRows($("reviews").tBodies[0], reviewRows, list, (r) => `${r.holder} ${r.requester} ${r.request}`, (r) => {
    const outcome = el("select", { "aria-label": `Outcome for ${r.request}` },
      el("option", { value: "appropriate" }, "appropriate"), el("option", { value: "inappropriate" }, "inappropriate"));
    const note = el("input", { "aria-label": `Review note for ${r.request}`, placeholder: "your reasons" });
    const close = el("button", {
      type: "button",
      onclick: async (event) => {
        event.target.disabled = true;
        await act(`review of ${r.request}`, "medical.review", { request: r.request, outcome: outcome.value, note: note.value });
        event.target.disabled = false;
      },
    }, "Close review");
    const row = { granted: el("td", {}), due: el("td", {}) };
    row.tr = el("tr", {},
      el("td", { class: "mono" }, r.request),
      el("td", {}, r.requester),
      row.granted,
      row.due,
      el("td", {}, outcome, " ", note, " ", close));
    return row;
  }, (row, r) => {
    row.granted.textContent = when(r.granted);
    row.due.textContent = when(r.due) + (r.overdue ? " (overdue)" : "");
    row.due.className = r.overdue ? "bad" : "";
  }, "Nothing awaits your review.", 5);
}

let refreshing = null;
let again = false;

/**
 * Reads everything again. One pass at a time; a call during a pass runs
 * one more pass after it (so an action's result is always shown).
 * Resolves to whether the last pass read everything.
 */
async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    let ok;
    do {
      again = false;
      try {
        await showInbox();
        await Promise.all([showOffers(), showAssets(), showMedical(), showReviews(), showContracts()]);
        ok = true;
      } catch (e) {
        say(`cannot read from the gateway: ${refusal(e)}`, false);
        ok = false;
      }
    } while (again);
    refreshing = null;
    return ok;
  })();
  return refreshing;
}

// ---- the live event stream ------------------------------------------------------

function showNotice(notice) {
  const row = el("tr", { class: notice.event === "discrepancy" ? "warn" : "ok", "data-tag": notice.tag },
    el("td", {}, notice.event),
    el("td", {}, notice.type),
    el("td", {}, notice.tag),
    el("td", {}, notice.location),
    el("td", {}, notice.by_kind),
    el("td", {}, notice.log_index));
  const tbody = $("discrepancies").tBodies[0];
  tbody.querySelector("td.muted")?.parentElement.remove();
  tbody.prepend(row);
}

async function follow() {
  let last = null;
  for (;;) {
    try {
      const response = await api("/api/events", last ? { headers: { "Last-Event-ID": last } } : {});
      if (response.status === 401) {
        $("live").textContent = "Not following: this page's token is not the console's.";
        $("live").className = "bad";
        return;
      }
      if (!response.ok) {
        const e = (await response.json().catch(() => ({}))).error || {};
        throw new Error(e.message || `the stream answered ${response.status}`);
      }
      $("live").textContent = "Live: following your agency's discrepancies.";
      $("live").className = "ok";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let end;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const id = block.split("\n").find((l) => l.startsWith("id: "));
          const data = block.split("\n").find((l) => l.startsWith("data: "));
          if (id) last = id.slice(4);
          if (data) showNotice(JSON.parse(data.slice(6)));
        }
      }
      throw new Error("the stream ended");
    } catch (e) {
      $("live").textContent = `Reconnecting to the event stream (${e.message})…`;
      $("live").className = "warn";
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- start ------------------------------------------------------------------------

async function start() {
  const response = await api("/api/session");
  if (!response.ok) {
    say("This console needs the address it printed at start (with its #token).", false);
    $("who").textContent = "Not signed in.";
    return;
  }
  session = await response.json();
  const name = session.name || session.agency;
  document.title = `${name}: xgate agency console`;
  $("title").textContent = `Agency console: ${name}`;
  $("who").textContent = `Acting as ${session.agency} with its own keys, through ${session.gateway}.`;
  agencyOptions($("offer-to"));
  agencyOptions($("med-to"));
  fill($("discrepancies").tBodies[0], [], "None since this page opened.", 6);

  onSubmit($("offer-form"), "asset.offer", (f) => Object.fromEntries(f));
  onSubmit($("register-form"), "asset.register", (f) => Object.fromEntries(f));
  onSubmit($("report-form"), "inventory.report", (f) => ({
    report: {
      location: f.get("location"),
      reported_by: f.get("reported_by"),
      observed: String(f.get("tags") || "").split(/\s+/).filter(Boolean).map((tag) => ({ tag })),
    },
  }), (lines) => {
    const report = lines[1] || {};
    const kinds = ["missing", "unexpected", "holder_mismatch", "unknown_tag"];
    const found = kinds.flatMap((k) => (report[k] || []).map((t) => `${k.replace("_", " ")}: ${t.tag ?? t}`));
    $("report-result").replaceChildren(
      el("p", { class: found.length ? "warn" : "ok" },
        `Reconciliation ${report.reconciliation_id ?? ""}: ${found.length ? found.join("; ") : "everything where it should be"}.`));
  });
  onSubmit($("medical-form"), "medical.request", (f) => ({
    to: f.get("to"), subject: f.get("subject"), purpose: f.get("purpose"), incident: f.get("incident"),
    responder: f.get("responder"), role: f.get("role"), section: f.getAll("section"),
  }), (lines, fields) => {
    const sent = stored(OUTGOING_KEY());
    sent.unshift({ request: lines[0].jti, to: fields.to });
    localStorage.setItem(OUTGOING_KEY(), JSON.stringify(sent.slice(0, 50)));
  });

  $("explain-form").addEventListener("submit", (event) => {
    event.preventDefault();
    explain($("explain-entry").value.trim());
  });

  follow();
  if (await refresh()) say("Up to date.");
  setInterval(refresh, REFRESH_MS);
}

start();
