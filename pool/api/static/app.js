// The pool's dashboard: hash routes over the JSON API (/api/v1), no build step, no dependencies.
// Every string that comes from the API (worker names above all) enters the page as a text node
// (el() / textContent), never as markup. Amounts are shown from the integer satoshi fields or the
// *_coins strings, never through floating point.

const API = "/api/v1";
const SATOSHIS_PER_COIN = 100000000n;
const REFRESH_MS = 60000;
const view = document.getElementById("view");
let pool = null; // GET /pools/{pool}: loaded on each render (cached by the server for cache_s)
let renderCount = 0;

// -- DOM -----------------------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// -- formatting ----------------------------------------------------------------------------------------

const PREFIXES = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];

export function formatScaled(value, unit = "") {
  if (value === null || value === undefined || !Number.isFinite(value)) return "-";
  if (value === 0) return `0 ${unit}`.trim();
  if (Math.abs(value) < 1) return `${value.toPrecision(3)} ${unit}`.trim();
  let index = 0;
  while (Math.abs(value) >= 1000 && index < PREFIXES.length - 1) {
    value /= 1000;
    index += 1;
  }
  return `${value.toFixed(2)} ${PREFIXES[index]}${unit}`.trim();
}

export const formatHashrate = (hashesPerSecond) => formatScaled(hashesPerSecond, "H/s");

/** Integer satoshis as a coin amount with 8 places, exactly (BigInt arithmetic). */
export function formatCoins(satoshis) {
  if (satoshis === null || satoshis === undefined) return "-";
  let amount = BigInt(satoshis);
  const sign = amount < 0n ? "-" : "";
  if (amount < 0n) amount = -amount;
  const fraction = (amount % SATOSHIS_PER_COIN).toString().padStart(8, "0");
  return `${sign}${amount / SATOSHIS_PER_COIN}.${fraction}`;
}

function formatPercent(ratio) {
  return ratio === null || ratio === undefined ? "-" : `${(ratio * 100).toFixed(1)} %`;
}

function formatTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "-";
  const date = new Date(unixSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function formatAgo(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "never";
  const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function shortHash(hash) {
  return hash && hash.length > 20 ? `${hash.slice(0, 10)}...${hash.slice(-6)}` : (hash || "-");
}

function symbol() {
  return pool ? pool.coin.symbol : "";
}

// -- the API -------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : {};
    throw new ApiError(response.status, error.code || "http_error", error.message || `HTTP ${response.status}`);
  }
  return body;
}

async function loadPool() {
  if (pool === null) {
    const { pools } = await api("/pools");
    if (!pools.length) throw new ApiError(503, "no_pool", "this server serves no pool");
    pool = pools[0];
  } else {
    pool = await api(`/pools/${encodeURIComponent(pool.id)}`);
  }
  document.getElementById("pool-name").textContent = pool.id;
  return pool;
}

const poolPath = (rest = "") => `/pools/${encodeURIComponent(pool.id)}${rest}`;

// -- building blocks -----------------------------------------------------------------------------------

/** A figure: label, shown text, and its raw value in data-value (what the API said; amounts as the
 * *_coins strings, since satoshis past 2**53 are not exact as JavaScript numbers). */
function stat(field, label, text, raw = null, note = null) {
  return el("div", { class: "stat" },
    el("div", { class: "stat-label" }, label),
    el("div", { class: "stat-value", "data-field": field, "data-value": raw === null ? null : String(raw) }, text),
    note === null ? null : el("div", { class: "stat-note" }, note));
}

function stats(...items) {
  return el("div", { class: "stats" }, items);
}

function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", {}, title), children);
}

/** A table that scrolls sideways on a narrow screen. columns: [heading, (row) => cell content, class?] */
function table(name, columns, rows, empty) {
  if (!rows.length) return el("p", { class: "muted", "data-empty": name }, empty);
  const head = el("tr", {}, columns.map(([heading, , className]) => el("th", { class: className }, heading)));
  const body = rows.map((row) => el("tr", {},
    columns.map(([, cell, className]) => el("td", { class: className }, cell(row)))));
  return el("div", { class: "table-wrap" }, el("table", { "data-table": name }, el("thead", {}, head),
    el("tbody", {}, body)));
}

function badge(status) {
  return el("span", { class: `badge badge-${status}` }, status);
}

function coinsText(coinsString) {
  return `${coinsString} ${symbol()}`;
}

function amount(field, coinsString) {
  return el("span", { class: "amount" }, el("span", { "data-field": field }, coinsString), ` ${symbol()}`);
}

/** A line chart of points [{time, hashrate}] as inline SVG, with its scale in plain text below. */
function hashrateChart(name, points, caption) {
  const width = 600;
  const height = 180;
  const values = points.map((point) => point.hashrate);
  const top = Math.max(...values, 0);
  const scale = top > 0 ? (height - 10) / top : 0;
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const coordinates = points.map((point, index) =>
    `${(index * step).toFixed(1)},${(height - point.hashrate * scale).toFixed(1)}`);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "chart",
    role: "img", "aria-label": caption, "data-chart": name, "data-points": points.length });
  for (const fraction of [0.25, 0.5, 0.75]) {
    const y = (height - (height - 10) * fraction).toFixed(1);
    chart.appendChild(svg("line", { x1: 0, x2: width, y1: y, y2: y, class: "grid" }));
  }
  if (coordinates.length) {
    chart.appendChild(svg("polygon", { points: `0,${height} ${coordinates.join(" ")} ${width},${height}`,
      class: "area" }));
    chart.appendChild(svg("polyline", { points: coordinates.join(" "), class: "line" }));
  }
  const first = points.length ? formatTime(points[0].time) : "-";
  return el("figure", { class: "chart-box" }, chart,
    el("figcaption", { class: "muted" }, `${caption}: peak ${formatHashrate(top)}, from ${first} to now`));
}

function lookupForm(value = "") {
  const input = el("input", { name: "address", type: "text", placeholder: "your payout address", value,
    autocomplete: "off", spellcheck: "false", "aria-label": "payout address", required: true });
  const form = el("form", { class: "lookup", "data-form": "lookup" }, input, el("button", { type: "submit" }, "Look up"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const address = input.value.trim();
    if (address) location.hash = `#/miner/${encodeURIComponent(address)}`;
  });
  return form;
}

function pager(route, page, pageSize, total) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return el("div", { class: "pager" },
    page > 0 ? el("a", { href: `#/${route}/${page - 1}`, rel: "prev" }, "Newer") : el("span"),
    el("span", { class: "muted" }, `page ${page + 1} of ${pages} (${total})`),
    page + 1 < pages ? el("a", { href: `#/${route}/${page + 1}`, rel: "next" }, "Older") : el("span"));
}

// -- pages ---------------------------------------------------------------------------------------------

async function overviewPage() {
  const [performance, miners] = await Promise.all([api(poolPath("/performance")),
    api(poolPath("/miners?page_size=10"))]);
  const network = pool.network;
  const last = pool.last_block;
  const scheme = pool.scheme.name.toUpperCase() + (pool.scheme.pplns_factor ? ` (N = ${pool.scheme.pplns_factor} x)` : "");
  return [
    el("h1", {}, "Pool overview"),
    lookupForm(localStorage.getItem("address") || ""),
    stats(
      stat("hashrate-5m", "Hashrate, 5 min", formatHashrate(pool.hashrate["5m"]), pool.hashrate["5m"]),
      stat("hashrate-1h", "Hashrate, 1 h", formatHashrate(pool.hashrate["1h"]), pool.hashrate["1h"]),
      stat("hashrate-24h", "Hashrate, 24 h", formatHashrate(pool.hashrate["24h"]), pool.hashrate["24h"]),
      stat("miners-online", "Miners online", String(pool.miners_online), pool.miners_online),
      stat("workers-online", "Workers online", String(pool.workers_online), pool.workers_online),
      stat("blocks-found", "Blocks found", String(pool.blocks_found), pool.blocks_found),
      stat("round-effort", "Round effort", formatPercent(pool.round.effort), pool.round.effort),
      stat("last-block", "Last block", last ? String(last.height) : "-", last ? last.height : null,
        last ? `${last.status}, ${formatAgo(last.time)}` : null),
      stat("network-difficulty", "Network difficulty", formatScaled(network.difficulty), network.difficulty),
      stat("network-height", "Network height", network.height === null ? "-" : String(network.height), network.height),
      stat("network-hashrate", "Network hashrate", formatHashrate(network.hashrate), network.hashrate),
      stat("total-paid", "Paid to miners", coinsText(pool.total_paid_coins), pool.total_paid_coins),
      stat("fee", "Pool fee", `${pool.fee.total_percent} %`, pool.fee.total_percent),
      stat("scheme", "Payout scheme", scheme, pool.scheme.name),
    ),
    section("Hashrate, last 24 hours", hashrateChart("pool", performance.ten_minutes, "Pool hashrate per 10 minutes")),
    section("Top miners (last hour)", table("miners", [
      ["Miner", (miner) => el("a", { href: `#/miner/${encodeURIComponent(miner.address)}`, class: "mono" }, miner.address)],
      ["Hashrate, 1 h", (miner) => formatHashrate(miner.hashrate["1h"]), "num"],
      ["Hashrate, 5 min", (miner) => formatHashrate(miner.hashrate["5m"]), "num"],
      ["Workers online", (miner) => String(miner.workers_online), "num"],
    ], miners.items, "No miner has submitted a share in the last hour.")),
  ];
}

async function blocksPage(page) {
  const pageSize = 25;
  const blocks = await api(poolPath(`/blocks?page=${page}&page_size=${pageSize}`));
  return [
    el("h1", {}, "Blocks"),
    stats(stat("blocks-found", "Blocks found", String(pool.blocks_found), pool.blocks_found),
      stat("round-effort", "Current round effort", formatPercent(pool.round.effort), pool.round.effort),
      stat("maturity", "Confirmations to mature", String(pool.coin.coinbase_maturity), pool.coin.coinbase_maturity)),
    section("Blocks found, newest first", table("blocks", [
      ["Height", (block) => el("span", { "data-height": block.height }, String(block.height)), "num"],
      ["Time", (block) => formatTime(block.time)],
      ["Status", (block) => badge(block.status)],
      ["Effort", (block) => formatPercent(block.effort), "num"],
      ["Confirmations", (block) => String(block.confirmations), "num"],
      ["Reward", (block) => coinsText(block.reward_coins), "num"],
      ["Finder", (block) => el("span", { class: "mono" }, block.finder)],
      ["Hash", (block) => el("span", { class: "mono", title: block.hash }, shortHash(block.hash))],
    ], blocks.items, "No blocks yet."), pager("blocks", page, pageSize, blocks.total)),
  ];
}

async function paymentsPage(page) {
  const pageSize = 25;
  const payments = await api(poolPath(`/payments?page=${page}&page_size=${pageSize}`));
  return [
    el("h1", {}, "Payments"),
    stats(stat("total-paid", "Paid to miners", coinsText(pool.total_paid_coins), pool.total_paid_coins),
      stat("minimum-payout", "Minimum payout",
        pool.minimum_payout === null ? "-" : coinsText(formatCoins(pool.minimum_payout)), pool.minimum_payout)),
    section("Payments, newest first", table("payments", [
      ["Time", (payment) => formatTime(payment.time)],
      ["Transaction", (payment) => el("span", { class: "mono", title: payment.txid || "" }, shortHash(payment.txid))],
      ["Amount", (payment) => coinsText(payment.amount_coins), "num"],
      ["Fee", (payment) => coinsText(formatCoins(payment.fee)), "num"],
      ["Payees", (payment) => String(payment.payees), "num"],
      ["Status", (payment) => badge(payment.status)],
      ["Confirmations", (payment) => String(payment.confirmations), "num"],
    ], payments.items, "No payments yet."), pager("payments", page, pageSize, payments.total)),
  ];
}

async function minerPage(address) {
  if (!address) {
    return [el("h1", {}, "Miner"), el("p", {}, "Enter the payout address you mine to:"),
      lookupForm(localStorage.getItem("address") || "")];
  }
  let miner;
  let performance;
  try {
    [miner, performance] = await Promise.all([
      api(poolPath(`/miners/${encodeURIComponent(address)}`)),
      api(poolPath(`/miners/${encodeURIComponent(address)}/performance`)),
    ]);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
      return [el("h1", {}, "Miner"), lookupForm(address), el("p", { class: "notice", "data-error": error.code },
        error.code === "unknown_miner" ? "The pool has no record of this address yet: send a share and look again."
          : error.message)];
    }
    throw error;
  }
  localStorage.setItem("address", miner.address);
  return [
    el("h1", {}, "Miner"),
    el("p", { class: "mono address", "data-field": "address" }, miner.address),
    stats(
      stat("hashrate-5m", "Hashrate, 5 min", formatHashrate(miner.hashrate["5m"]), miner.hashrate["5m"]),
      stat("hashrate-1h", "Hashrate, 1 h", formatHashrate(miner.hashrate["1h"]), miner.hashrate["1h"]),
      stat("hashrate-24h", "Hashrate, 24 h", formatHashrate(miner.hashrate["24h"]), miner.hashrate["24h"]),
      stat("workers-total", "Workers (24 h)", String(miner.workers_total), miner.workers_total,
        `${miner.workers_online} online`),
      el("div", { class: "stat" }, el("div", { class: "stat-label" }, "Balance"),
        el("div", { class: "stat-value" }, amount("balance", miner.balance_coins))),
      el("div", { class: "stat" }, el("div", { class: "stat-label" }, "Immature (estimate)"),
        el("div", { class: "stat-value" }, amount("immature", miner.immature_estimate_coins))),
      el("div", { class: "stat" }, el("div", { class: "stat-label" }, "Total paid"),
        el("div", { class: "stat-value" }, amount("paid", miner.total_paid_coins))),
    ),
    section("Hashrate, last 24 hours", hashrateChart("miner", performance.ten_minutes, "Hashrate per 10 minutes")),
    section("Workers", table("workers", [
      ["Worker", (worker) => el("span", { class: "worker-name" }, worker.name)],
      ["Hashrate, 5 min", (worker) => formatHashrate(worker.hashrate["5m"]), "num"],
      ["Hashrate, 1 h", (worker) => formatHashrate(worker.hashrate["1h"]), "num"],
      ["Hashrate, 24 h", (worker) => formatHashrate(worker.hashrate["24h"]), "num"],
      ["Last share", (worker) => formatAgo(worker.last_share)],
      ["Status", (worker) => badge(worker.online ? "online" : "offline")],
    ], miner.workers, "No worker has submitted a share in 24 hours.")),
    section("Payouts", table("miner-payments", [
      ["Time", (payment) => formatTime(payment.time)],
      ["Transaction", (payment) => el("span", { class: "mono", title: payment.txid || "" }, shortHash(payment.txid))],
      ["Amount", (payment) => coinsText(payment.amount_coins), "num"],
      ["Status", (payment) => badge(payment.status)],
    ], miner.payments, "No payouts yet.")),
    section("Earnings per day (credited)", table("earnings", [
      ["Day", (day) => day.day],
      ["Amount", (day) => coinsText(day.amount_coins), "num"],
    ], miner.daily_earnings.slice().reverse(), "Nothing credited in the last 30 days.")),
  ];
}

function connectPage() {
  const host = location.hostname || "pool.example";
  const address = localStorage.getItem("address") || "YOUR_ADDRESS";
  const algorithm = pool.coin.algorithm;
  const first = pool.ports[0];
  const url = (port) => `stratum+tcp://${host}:${port.port}`;
  return [
    el("h1", {}, "How to connect"),
    section("Stratum",
      table("ports", [
        ["URL", (port) => el("code", { "data-field": "stratum-url" }, url(port))],
        ["Name", (port) => port.name],
        ["Starting difficulty", (port) => formatScaled(port.difficulty), "num"],
        ["Range", (port) => port.vardiff ? `${formatScaled(port.min_difficulty)} - ${formatScaled(port.max_difficulty)}`
          : "fixed"],
      ], pool.ports, "This pool has no Stratum port."),
      el("dl", { class: "facts" },
        el("dt", {}, "User"), el("dd", {}, el("code", { "data-field": "stratum-user" }, `${address}.WORKER`),
          " - your payout address, a dot, and a worker name of your choice (letters, digits, _ . -, up to 64)"),
        el("dt", {}, "Password"), el("dd", {}, el("code", {}, "x"), " (anything; not checked)"),
        el("dt", {}, "Algorithm"), el("dd", {}, algorithm)),
    ),
    section("Example: cpuminer",
      el("pre", { class: "command" }, el("code", { "data-field": "cpuminer-command" },
        first ? `cpuminer -a ${algorithm} -o ${url(first)} -u ${address}.rig1 -p x` : "-"))),
    section("Payouts",
      el("dl", { class: "facts" },
        el("dt", {}, "Scheme"), el("dd", {}, pool.scheme.name.toUpperCase()),
        el("dt", {}, "Fee"), el("dd", {}, `${pool.fee.total_percent} %`),
        el("dt", {}, "Minimum payout"),
        el("dd", {}, pool.minimum_payout === null ? "-" : coinsText(formatCoins(pool.minimum_payout))),
        el("dt", {}, "Coinbase maturity"), el("dd", {}, `${pool.coin.coinbase_maturity} confirmations`))),
  ];
}

const HASHRATE_UNITS = [["H/s", 1], ["kH/s", 1e3], ["MH/s", 1e6], ["GH/s", 1e9], ["TH/s", 1e12], ["PH/s", 1e15]];

function estimatePage() {
  const number = (name, label, value, step = "any") => el("label", {}, label,
    el("input", { name, type: "number", min: "0", step, value, inputmode: "decimal" }));
  const unit = el("select", { name: "unit", "aria-label": "hashrate unit" },
    HASHRATE_UNITS.map(([name, factor]) => el("option", { value: factor, selected: name === "MH/s" }, name)));
  const form = el("form", { class: "estimate", "data-form": "estimate" },
    el("label", {}, "Hashrate", el("span", { class: "with-unit" },
      el("input", { name: "hashrate", type: "number", min: "0", step: "any", value: "1", required: true,
        inputmode: "decimal" }), unit)),
    number("power_w", "Power draw (W)", "0"),
    number("price_kwh", "Electricity price per kWh", "0"),
    number("coin_price", `Price of one ${symbol() || "coin"} (optional)`, ""),
    el("button", { type: "submit" }, "Estimate"));
  const result = el("div", { class: "estimate-result", "data-result": "estimate" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const hashrate = Number(data.get("hashrate")) * Number(data.get("unit"));
    const query = new URLSearchParams({ hashrate: String(hashrate) });
    for (const name of ["power_w", "price_kwh", "coin_price"]) {
      if (String(data.get(name)).trim() !== "") query.set(name, String(data.get(name)));
    }
    result.replaceChildren(el("p", { class: "muted" }, "Computing..."));
    try {
      const estimate = await api(poolPath(`/estimate?${query}`));
      const money = (value) => value === null ? "-" : value.toFixed(2);
      result.replaceChildren(stats(
        stat("coins-per-day", "Expected per day", coinsText(estimate.coins_per_day), estimate.coins_per_day),
        stat("blocks-per-day", "Blocks per day", estimate.blocks_per_day.toPrecision(3), estimate.blocks_per_day),
        stat("block-reward", "Block reward", coinsText(estimate.block_reward_coins), estimate.block_reward_coins),
        stat("estimate-fee", "Pool fee", `${estimate.fee_percent} %`, estimate.fee_percent),
        stat("power-cost", "Electricity per day", money(estimate.power_cost_per_day), estimate.power_cost_per_day),
        stat("revenue", "Revenue per day", money(estimate.revenue_per_day), estimate.revenue_per_day),
        stat("profit", "Profit per day", money(estimate.profit_per_day), estimate.profit_per_day),
      ), el("p", { class: "muted" }, `${estimate.note}; network difficulty ${formatScaled(estimate.network_difficulty)}.`));
    } catch (error) {
      result.replaceChildren(el("p", { class: "notice", "data-error": error.code || "error" }, error.message));
    }
  });
  return [el("h1", {}, "Earnings estimator"), section("Your miner", form), result];
}

// -- routing -------------------------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const page = (text) => Math.max(0, Number.parseInt(text || "0", 10) || 0);
  switch (parts[0]) {
    case "": return ["overview", overviewPage];
    case "blocks": return ["blocks", () => blocksPage(page(parts[1]))];
    case "payments": return ["payments", () => paymentsPage(page(parts[1]))];
    case "miner": return ["miner", () => minerPage(decodeURIComponent(parts.slice(1).join("/")))];
    case "connect": return ["connect", connectPage];
    case "estimate": return ["estimate", estimatePage];
    default: return ["missing", () => [el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "To the pool"))]];
  }
}

async function render() {
  const count = ++renderCount;
  const [name, build] = route();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  let content;
  try {
    await loadPool();
    content = await build();
  } catch (error) {
    content = [el("h1", {}, "Cannot load"), el("p", { class: "notice", "data-error": error.code || "error" },
      error.message || String(error))];
  }
  if (count !== renderCount) return; // a newer navigation won
  view.replaceChildren(...content);
  view.dataset.page = name;
  view.dataset.rendered = String(count);
}

window.addEventListener("hashchange", render);
setInterval(() => {
  const [name] = route();
  if (document.visibilityState === "visible" && ["overview", "blocks", "payments", "miner"].includes(name)) render();
}, REFRESH_MS);
render();
