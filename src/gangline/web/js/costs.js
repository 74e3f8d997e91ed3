// The cost view: what the agents have spent, per UTC day, per item and per agent profile.
// Every chart is drawn from the ledger (`GET /api/costs`) and has a real table under it with
// the same numbers, so nothing here is only visible as shapes.

import { api } from "./api.js";
import { fill, h, money, svg } from "./dom.js";

const DAYS_SHOWN = 30;
const ITEMS_SHOWN = 15;
const REFRESH_MS = 500;
const EMPTY = "No agent has spent anything yet.";

/** Mount the view in `main`; `event(row)` takes pipeline events, `dispose()` stops everything. */
export function mountCosts(main) {
  const root = h("section", { class: "costs-view", "aria-labelledby": "costs-heading", "aria-busy": "true" });
  const heading = h("h1", { id: "costs-heading" }, "Costs");
  const body = h("div", { class: "costs-body" }, h("p", { class: "loading" }, "Loading costs…"));
  root.append(heading, body);
  fill(main, root);

  let disposed = false;
  let controller = null;
  let timer = null;

  async function load() {
    if (disposed) return;
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    root.setAttribute("aria-busy", "true");
    try {
      const [day, item, profile, items] = await Promise.all([
        api("/api/costs?by=day", { signal: mine.signal }),
        api("/api/costs?by=item", { signal: mine.signal }),
        api("/api/costs?by=profile", { signal: mine.signal }),
        // Only labels: the charts still draw when the item list cannot be had.
        api("/api/items?all=true", { signal: mine.signal }).catch((err) => {
          if (err.name === "AbortError") throw err;
          return [];
        }),
      ]);
      if (disposed || controller !== mine) return;
      render(body, { day, item, profile, items: items || [] });
      main.dataset.ready = "true"; // for tests: the view has drawn what the server said
    } catch (err) {
      if (err.name === "AbortError" || disposed || controller !== mine) return;
      fill(body, h("p", { class: "costs-error", role: "alert" }, `Could not load the costs: ${err.message}`));
      main.dataset.ready = "true";
    } finally {
      if (controller === mine) {
        controller = null;
        root.setAttribute("aria-busy", "false");
      }
    }
  }

  load();

  return {
    dispose() {
      disposed = true;
      clearTimeout(timer);
      timer = null;
      if (controller) controller.abort();
      controller = null;
    },
    event(row) {
      if (disposed || !row || row.kind !== "run_finished") return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        load();
      }, REFRESH_MS);
    },
  };
}

// --- drawing ------------------------------------------------------------------------------------

function render(body, { day, item, profile, items }) {
  // Re-rendering replaces the view; put focus back on the same link or table if it was inside.
  const active = body.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  const width = chartWidth(body);
  const total = Number(day.total_usd) || 0;
  const anyRows = day.rows.length + item.rows.length + profile.rows.length > 0;
  const titles = new Map(items.map((it) => [String(it.id), it.title]));

  const parts = [
    h("p", { class: "total-line" }, "Total spend: ", h("strong", { class: "total", "data-usd": total }, money(total))),
  ];
  if (total <= 0) parts.push(h("p", { class: "empty" }, EMPTY));
  if (anyRows) {
    parts.push(
      daySection(day.rows, width, total > 0),
      itemSection(item.rows, titles, total > 0),
      profileSection(profile.rows, total > 0),
    );
  }
  fill(body, parts);
  if (active) {
    const again = body.querySelector(active);
    if (again) again.focus();
  }
}

function focusKey(el) {
  if (el.matches("a[href]")) return `a[href="${CSS.escape(el.getAttribute("href"))}"]`;
  if (el.id) return `#${CSS.escape(el.id)}`;
  return null;
}

/** The chart's coordinate width: the container's own, so its text is drawn at about 1:1. */
function chartWidth(el) {
  const measured = Math.round(el.clientWidth || 0);
  if (!measured) return 640;
  return Math.max(320, Math.min(960, measured));
}

function section(id, title, ...children) {
  return h("section", { class: "cost-section", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

// --- per day: vertical bars in an SVG -----------------------------------------------------------

function daySection(rows, width, withChart) {
  const sorted = [...rows].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const shown = sorted.slice(-DAYS_SHOWN);
  return section(
    "costs-by-day",
    "Spend per day (UTC)",
    withChart && shown.length ? dayChart(shown, width) : null,
    table("costs-day-table", "Spend per day (UTC), newest first", "Day",
      [...sorted].reverse(), (row) => dayLabel(row.key, true)),
  );
}

function dayChart(rows, width) {
  const height = 240;
  const pad = { top: 14, right: 8, bottom: 30, left: 64 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(0, ...rows.map((r) => r.cost_usd));
  const { step, top } = niceScale(max);
  const y = (usd) => pad.top + plotH - (top > 0 ? (usd / top) * plotH : 0);

  const grid = [];
  for (let i = 0; i <= 3; i += 1) {
    const value = step * i;
    const gy = round(y(value));
    grid.push(
      svg("line", { class: i === 0 ? "axis" : "gridline", x1: pad.left, x2: width - pad.right, y1: gy, y2: gy }),
      svg("text", { class: "tick", x: pad.left - 6, y: gy, "text-anchor": "end", "dominant-baseline": "middle" },
        axisMoney(value, step)),
    );
  }

  const band = plotW / rows.length;
  const barW = Math.max(1, Math.min(48, band * 0.72));
  const every = Math.max(1, Math.ceil(rows.length / Math.max(1, Math.floor(plotW / 56))));
  const bars = [];
  const labels = [];
  rows.forEach((row, i) => {
    const x = pad.left + band * i + (band - barW) / 2;
    let barH = plotH + pad.top - y(row.cost_usd);
    if (row.cost_usd > 0) barH = Math.max(1, barH);
    bars.push(
      svg(
        "rect",
        {
          class: "bar", "data-key": row.key, "data-usd": row.cost_usd,
          x: round(x), y: round(pad.top + plotH - barH), width: round(barW), height: round(barH),
        },
        svg("title", {}, `${dayLabel(row.key, true)}: ${exact(row.cost_usd)} (${plural(row.runs, "run")})`),
      ),
    );
    // Label every few days, always the last one, never two crowded together.
    const last = i === rows.length - 1;
    if ((i % every === 0 && (rows.length - 1 - i >= every || last)) || last) {
      // Near an edge a label is anchored to it, so that it is never cut off.
      const cx = x + barW / 2;
      const [lx, anchor] = cx > width - 26 ? [width - 1, "end"] : cx < pad.left + 4 ? [pad.left, "start"] : [cx, "middle"];
      labels.push(
        svg("text", { class: "tick", x: round(lx), y: height - 10, "text-anchor": anchor }, dayLabel(row.key)),
      );
    }
  });

  const first = rows[0];
  const lastRow = rows[rows.length - 1];
  const peak = rows.reduce((a, b) => (b.cost_usd > a.cost_usd ? b : a), first);
  const sum = rows.reduce((a, b) => a + b.cost_usd, 0);
  const span = rows.length === 1
    ? `on ${dayLabel(first.key, true)}`
    : `over ${rows.length} days with spend, ${dayLabel(first.key, true)} to ${dayLabel(lastRow.key, true)}`;
  const label = `Bar chart of spend per day: ${money(sum)} ${span}; highest ${money(peak.cost_usd)} on ${dayLabel(peak.key, true)}. The table below has every amount.`;

  return svg(
    "svg",
    {
      class: "chart chart-day", "data-by": "day", role: "img", "aria-label": label,
      viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet",
    },
    svg("g", { class: "grid" }, grid),
    svg("g", { class: "bars" }, bars),
    svg("g", { class: "labels" }, labels),
  );
}

/** A step of 1, 2, 2.5 or 5 times a power of ten, so that three steps reach `max`. */
function niceScale(max) {
  if (!(max > 0)) return { step: 0.01, top: 0.03 };
  const raw = max / 3;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = [1, 2, 2.5, 5, 10].find((n) => n >= norm - 1e-9) || 10;
  const step = nice * mag;
  return { step, top: step * 3 };
}

function axisMoney(value, step) {
  if (value === 0) return "$0";
  if (Number.isInteger(step)) return `$${value.toLocaleString("en-US")}`;
  const decimals = step >= 0.01 ? 2 : Math.min(6, Math.ceil(-Math.log10(step)) + 1);
  return `$${trimZeros(value.toFixed(decimals), 2)}`;
}

// --- per item and per profile: horizontal bars, one row each ------------------------------------

function itemSection(rows, titles, withChart) {
  const sorted = [...rows].sort((a, b) => b.cost_usd - a.cost_usd || Number(a.key) - Number(b.key));
  const label = (row) => (isId(row.key) ? `#${row.key} ${titles.get(row.key) ?? ""}`.trim() : row.key === "chat" ? "the chat agent" : row.key);
  const link = (row) => (isId(row.key) ? `#/items/${row.key}` : null);
  const top = sorted.slice(0, ITEMS_SHOWN);
  return section(
    "costs-by-item",
    sorted.length > ITEMS_SHOWN ? `Spend per item (top ${ITEMS_SHOWN} of ${sorted.length})` : "Spend per item",
    withChart && top.length ? hbars("item", top, label, link, "Spend per item") : null,
    table("costs-item-table", "Spend per item, most first", "Item", sorted, (row) => {
      const href = link(row);
      return href ? h("a", { href }, label(row)) : label(row);
    }),
  );
}

function profileSection(rows, withChart) {
  const sorted = [...rows].sort((a, b) => b.cost_usd - a.cost_usd || (a.key < b.key ? -1 : 1));
  const label = (row) => (row.key === "None" || row.key === "" ? "(no profile)" : row.key);
  return section(
    "costs-by-profile",
    "Spend per agent profile",
    withChart && sorted.length ? hbars("profile", sorted, label, () => null, "Spend per agent profile") : null,
    table("costs-profile-table", "Spend per agent profile, most first", "Profile", sorted, label),
  );
}

/** A list whose rows are a label (a link when `link` gives one), a bar and the amount. */
function hbars(by, rows, label, link, name) {
  const max = Math.max(0, ...rows.map((r) => r.cost_usd));
  return h(
    "ol",
    { class: `chart chart-bars chart-${by}`, "data-by": by, "aria-label": name },
    rows.map((row) => {
      const text = label(row);
      const href = link(row);
      const share = max > 0 ? (row.cost_usd / max) * 100 : 0;
      const width = row.cost_usd > 0 ? Math.max(0.5, share) : 0;
      return h(
        "li",
        { class: "bar-row" },
        href ? h("a", { class: "bar-label", href }, text) : h("span", { class: "bar-label" }, text),
        svg(
          "svg",
          { class: "bar-track", viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" },
          svg(
            "rect",
            { class: "bar", "data-key": row.key, "data-usd": row.cost_usd, x: 0, y: 0, width: round(width), height: 10 },
            svg("title", {}, `${text}: ${exact(row.cost_usd)} (${plural(row.runs, "run")})`),
          ),
        ),
        h("span", { class: "bar-value" }, money(row.cost_usd)),
      );
    }),
  );
}

// --- the tables ---------------------------------------------------------------------------------

function table(id, caption, keyHeading, rows, keyCell) {
  const sum = (name) => rows.reduce((a, r) => a + (Number(r[name]) || 0), 0);
  const num = (n) => h("td", { class: "num" }, Number(n).toLocaleString());
  const line = (row) =>
    h(
      "tr",
      { "data-key": row.key },
      h("th", { scope: "row" }, keyCell(row)),
      num(row.runs),
      num(row.input_tokens),
      num(row.output_tokens),
      num(row.cache_read_tokens),
      num(row.cache_write_tokens),
      h("td", { class: "num", title: exact(row.cost_usd) }, money(row.cost_usd)),
    );
  const totalCost = sum("cost_usd");
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-labelledby": `${id}-caption`, tabindex: "0" },
    h(
      "table",
      { class: "cost-table", id },
      h("caption", { id: `${id}-caption` }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, keyHeading),
          ["Runs", "Input tokens", "Output tokens", "Cache read", "Cache write", "Cost"].map((name) =>
            h("th", { scope: "col", class: "num" }, name),
          ),
        ),
      ),
      h("tbody", {}, rows.map(line)),
      h(
        "tfoot",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "row" }, "Total"),
          num(sum("runs")),
          num(sum("input_tokens")),
          num(sum("output_tokens")),
          num(sum("cache_read_tokens")),
          num(sum("cache_write_tokens")),
          h("td", { class: "num", title: exact(totalCost) }, money(totalCost)),
        ),
      ),
    ),
  );
}

// --- formatting ---------------------------------------------------------------------------------

/** A UTC day `YYYY-MM-DD` as "Mar 5" (or "Mar 5, 2025" when `long`), read in UTC. */
function dayLabel(key, long = false) {
  const date = new Date(`${key}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return key;
  const opts = { month: "short", day: "numeric", timeZone: "UTC" };
  if (long) opts.year = "numeric";
  return date.toLocaleDateString(undefined, opts);
}

/** The amount to the hundred-thousandth of a cent: what the ledger holds, without trailing zeros. */
function exact(usd) {
  const n = Number(usd) || 0;
  return `$${trimZeros(n.toFixed(6), 2)}`;
}

function trimZeros(text, keep) {
  if (!text.includes(".")) return text;
  let [whole, frac] = text.split(".");
  frac = frac.replace(/0+$/, "");
  if (frac.length < keep) frac = frac.padEnd(keep, "0");
  return frac ? `${whole}.${frac}` : whole;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function isId(key) {
  return /^[1-9][0-9]*$/.test(String(key));
}

function round(n) {
  return Math.round(n * 100) / 100;
}
