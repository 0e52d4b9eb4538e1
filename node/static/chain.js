// The chain's views: the block list, a block with its transactions, receipts and commit
// certificate, a transaction looked up by hash, and the view-change history.

import { age, badge, clock, compact, el, empty, fetchJSON, fill, short, table } from "./util.js";

const BLOCK_LIST_LENGTH = 25;
let newestShown = 0;

export async function renderBlockList(app) {
  const result = await fetchJSON(`/blocks?limit=${BLOCK_LIST_LENGTH}`);
  if (!result.ok) return;
  const body = document.querySelector("#block-list tbody");
  const blocks = result.body.blocks;
  const previous = newestShown;
  newestShown = blocks.length ? blocks[0].height : 0;
  fill(
    body,
    blocks.map((b) =>
      el(
        "tr",
        {
          dataset: { height: b.height },
          class: [b.height > previous && previous ? "fresh" : "", app.selectedHeight === b.height ? "selected" : ""].join(" ").trim() || null,
          onclick: () => { location.hash = `#block/${b.height}`; },
        },
        el("td", {}, el("a", { href: `#block/${b.height}` }, `#${b.height}`)),
        el("td", { class: "mono" }, short(b.hash, 16)),
        el("td", {}, b.tx_count),
        el("td", { class: "muted" }, age(b.timestamp_ms)),
      ),
    ),
  );
  if (!blocks.length) fill(body, el("tr", {}, el("td", { colspan: 4 }, empty("No blocks yet: submit a transaction."))));
  if (app.selectedHeight === null && blocks.length) await renderBlock(app, blocks[0].height, { follow: true });
}

export async function renderBlock(app, height, { follow = false } = {}) {
  const container = document.getElementById("block-detail");
  const result = await fetchJSON(`/blocks/${height}`);
  if (!result.ok) {
    fill(container, el("h2", {}, `Block ${height}`), empty(result.body?.error || "not found"));
    return;
  }
  if (!follow) app.selectedHeight = height;
  fill(container, blockView(app, result.body, follow));
}

function keyValues(pairs) {
  return el("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function validatorName(app, index) {
  const v = app.info?.validators?.[index];
  return v ? `${v.name} (${index})` : String(index);
}

function blockView(app, block, follow) {
  const h = block.header;
  const cert = block.certificate;
  const quorum = 2 * (app.info?.f ?? 1) + 1;
  return el(
    "div",
    { class: "block-view", dataset: { height: h.height } },
    el("h2", {}, `Block #${h.height} `, follow ? badge("latest", "info") : null),
    keyValues([
      ["hash", el("span", { class: "mono" }, h.hash)],
      ["previous", h.height > 1 ? el("a", { href: `#block/${h.height - 1}`, class: "mono" }, h.prev_hash) : el("span", { class: "mono" }, h.prev_hash)],
      ["time", `${clock(h.timestamp_ms)} (${age(h.timestamp_ms)})`],
      ["proposer", validatorName(app, h.proposer)],
      ["view", h.view],
      ["tx root", el("span", { class: "mono" }, short(h.tx_root, 24))],
      ["state after", el("span", { class: "mono" }, short(block.state_digest_after, 24))],
    ]),
    el("h3", {}, `Transactions (${block.txs.length})`),
    block.txs.length ? block.txs.map((tx) => txCard(tx, tx.receipt)) : empty("An empty block."),
    el("h3", {}, "Commit certificate"),
    cert
      ? el(
          "div",
          { class: "certificate" },
          el("p", {}, `${cert.commits.length} commit signatures for view ${cert.view} (quorum ${quorum}) `, cert.commits.length >= quorum ? badge("final", "ok") : badge("short of quorum", "bad")),
          table(
            ["validator", "signature"],
            cert.commits.map((c) => ({ cells: [validatorName(app, c.validator), el("span", { class: "mono" }, short(c.signature, 48))] })),
          ),
        )
      : empty("No certificate stored."),
  );
}

export function txCard(tx, receipt) {
  const status = receipt ? (receipt.ok ? badge("ok", "ok") : badge("failed", "bad")) : badge("pending", "warn");
  return el(
    "div",
    { class: "tx", dataset: { hash: tx.hash } },
    el(
      "div",
      { class: "tx-head" },
      el("strong", {}, `${tx.contract}.${tx.method}`),
      " ",
      status,
      el("a", { class: "mono right", href: `#tx/${tx.hash}` }, short(tx.hash, 16)),
    ),
    el("div", { class: "muted small" }, `sender ${short(tx.sender, 16)} \u00b7 nonce ${tx.nonce}`),
    el("pre", { class: "args" }, compact(tx.args)),
    receipt && !receipt.ok ? el("div", { class: "error" }, receipt.error) : null,
    receipt && receipt.ok && receipt.result !== null ? el("div", { class: "small" }, "result ", el("code", {}, compact(receipt.result))) : null,
    receipt && receipt.events?.length
      ? el("ul", { class: "events" }, receipt.events.map((e) => el("li", {}, el("code", {}, `${e.contract}.${e.kind}`), " ", e.subject, " ", el("span", { class: "muted" }, compact(e.data)))))
      : null,
  );
}

const HASH_PATTERN = /^[0-9a-f]{64}$/i;

// Look up a transaction by hash; a 64-digit hash that is no transaction may be a block's.
export async function renderTx(app, hash) {
  const container = document.getElementById("tx-result");
  // Following an unsettled transaction (app.js) asks again every refresh: what is shown stays
  // until the new answer replaces it, rather than flashing "Looking up" each time.
  const following = container.dataset.hash === hash && ["committed", "pending"].includes(container.dataset.status);
  container.dataset.hash = hash;
  if (!following) delete container.dataset.settled;
  if (!HASH_PATTERN.test(hash)) {
    // Anything else would make a request for another path (`..`, `?`, `#`) or none at all.
    container.dataset.status = "unknown";
    fill(container, el("h2", {}, "Transaction ", badge("not a hash", "bad")), el("p", { class: "mono" }, hash), empty("Search for a transaction or block hash (64 hexadecimal digits) or a block height."));
    return;
  }
  if (!following) {
    container.dataset.status = "loading";
    fill(container, el("h2", {}, "Transaction"), el("p", { class: "mono" }, hash), empty("Looking up\u2026"));
  }
  const result = await fetchJSON(`/tx/${hash}`);
  if (container.dataset.hash !== hash) return; // another search took the panel meanwhile
  if (result.ok && result.body?.tx) {
    const body = result.body;
    // An unsettled receipt failed a gate without using the nonce: a later block may still
    // include the transaction and run it, so the page keeps looking (see app.js).
    const unsettled = body.status === "committed" && body.settled === false;
    container.dataset.status = body.status;
    container.dataset.settled = String(!unsettled);
    fill(
      container,
      el(
        "h2",
        {},
        "Transaction ",
        badge(body.status, body.status === "committed" && !unsettled ? "ok" : "warn"),
        unsettled ? [" ", badge("not settled", "warn")] : null,
      ),
      keyValues([
        ["hash", el("span", { class: "mono", id: "tx-hash" }, hash)],
        ["block", body.height ? el("a", { href: `#block/${body.height}` }, `#${body.height}`) : "not yet in a block"],
      ]),
      unsettled
        ? el("p", { class: "muted small", id: "tx-unsettled" }, "Not settled: this inclusion failed without using the nonce, so a later block may still run the transaction.")
        : null,
      txCard(body.tx, body.receipt || null),
    );
    return;
  }
  const block = await fetchJSON(`/blocks/hash/${hash}`);
  if (block.ok) {
    location.hash = `#block/${block.body.header.height}`;
    return;
  }
  container.dataset.status = "unknown";
  fill(container, el("h2", {}, "Transaction ", badge("not found", "bad")), el("p", { class: "mono" }, hash), empty(result.body?.error || "No transaction or block has this hash on this node."));
}

// View-change history: where each view begins on the chain, what the node recorded, what the
// explorer saw, and what this page saw each node do.
export async function renderViews(app) {
  const container = document.getElementById("views-detail");
  const result = await fetchJSON("/explorer/views");
  if (!result.ok) return;
  const data = result.body;
  const name = (index) => data.validators[index % data.validators.length] ?? String(index);
  const blocks = data.blocks;
  const seen = app.viewLog;
  fill(
    container,
    el("h2", {}, "View changes"),
    keyValues([
      ["current view", data.view === null ? "observer" : `${data.view} (primary ${name(data.view)})`],
      ["views this node entered", data.view_changes],
    ]),
    el("h3", {}, "Views on the chain"),
    el("p", { class: "muted small" }, "The first committed block of each view, from the block headers."),
    data.blocks_truncated
      ? el("p", { class: "muted small", id: "views-truncated" }, "Still searching the chain: older view changes show up as the page refreshes.")
      : null,
    blocks.length > 1 || (blocks.length === 1 && blocks[0].view > 0)
      ? table(
          ["view", "primary", "first block", "time"],
          blocks.map((b) => ({ cells: [b.view, name(b.view), el("a", { href: `#block/${b.first_height}` }, `#${b.first_height}`), `${clock(b.at_ms)} (${age(b.at_ms)})`] })),
        )
      : empty(blocks.length ? "Every block so far was committed in view 0." : "No blocks yet."),
    data.node
      ? [
          el("h3", {}, "Recorded by this node"),
          data.node.length < data.view_changes
            ? el("p", { class: "muted small", id: "views-node-shown" }, `The newest ${data.node.length} of the ${data.view_changes} views it entered.`)
            : null,
          table(["view", "primary", "height", "time"], data.node.map((v) => ({ cells: [v.view, name(v.view), v.height, `${clock(v.at_ms)} (${age(v.at_ms)})`] }))),
        ]
      : null,
    el("h3", {}, "Observed"),
    el("p", { class: "muted small" }, "Views as the explorer watched them: on the serving node since it started, and on every node since this page opened."),
    seen.length || data.observed.length
      ? table(
          ["time", "node", "change", "height"],
          [
            ...data.observed.map((v) => ({ at: v.at_ms, cells: [clock(v.at_ms), app.info?.node.name ?? "this node", v.kind === "start" ? `started in view ${v.view}` : `entered view ${v.view} (primary ${name(v.view)})`, v.height] })),
            ...seen.map((v) => ({ at: v.at_ms, cells: [clock(v.at_ms), v.node, `view ${v.from} \u2192 ${v.to} (primary ${name(v.to)})`, v.height] })),
          ].sort((a, b) => b.at - a.at),
          { rowAttrs: () => ({ class: "view-row" }) },
        )
      : empty("No view change seen yet."),
  );
}
