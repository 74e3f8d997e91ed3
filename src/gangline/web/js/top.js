// The Top view: each live agent run's processes, as a tree, with CPU (a share of one core) and
// resident memory (GET /api/top), read again every few seconds while the view is open.

import { api } from "./api.js";
import { fill, h } from "./dom.js";

const EVERY_MS = 2000;
const MIB = 2 ** 20;
const EMPTY = "No agent is running.";

/** Mount the view in `main`; `dispose()` stops its readings. */
export function mountTop(main) {
  const root = h("section", { class: "top-view", "aria-labelledby": "top-heading", "aria-busy": "true" });
  const body = h("div", { class: "top-body", "aria-live": "off" }, h("p", { class: "loading" }, "Reading the processes…"));
  const foot = h("p", { class: "top-foot" });
  root.append(h("h1", { id: "top-heading" }, "Top"), body, foot);
  fill(main, root);

  let disposed = false;
  let timer = null;

  async function load() {
    if (disposed) return;
    try {
      const reading = await api(`/api/top?over_s=${EVERY_MS / 1000}`);
      if (disposed) return;
      fill(body, ...(reading.runs.length ? reading.runs.map(runTable) : [h("p", { class: "empty" }, EMPTY)]));
      fill(foot, `CPU over the last ${reading.over_s.toFixed(1)} s; read every ${EVERY_MS / 1000} s while this view is open.`);
    } catch (err) {
      fill(body, h("p", { class: "top-error", role: "alert" }, `Could not read the processes: ${err.message}`));
    }
    root.setAttribute("aria-busy", "false");
    main.dataset.ready = "true"; // for tests: the view has drawn what the server said
    if (!disposed) timer = setTimeout(load, EVERY_MS);
  }

  load();
  return {
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
    event() {},
  };
}

function runTable(row) {
  const run = row.run;
  const item = run.item_id === null ? h("span", {}, "chat") : h("a", { href: `#/items/${run.item_id}` }, `#${run.item_id}`);
  const heading = h(
    "h2",
    { class: "top-run" },
    h("strong", {}, run.id),
    " (",
    item,
    `, ${run.role}, ${run.profile}): ${row.processes.length} process(es), CPU ${row.cpu_percent.toFixed(0)}%, memory ${(row.rss_bytes / MIB).toFixed(0)} MiB`,
  );
  const rows = row.processes.map((p) => {
    const name = h("td", { class: "name" }, p.name);
    name.style.paddingLeft = `${0.5 + p.depth * 1.2}rem`; // the tree's depth (the CSP allows no style attribute)
    return h(
      "tr",
      { "data-pid": String(p.pid), class: p.cpu_percent >= 50 ? "busy" : "" },
      h("td", { class: "num" }, String(p.pid)),
      name,
      h("td", { class: "num" }, p.cpu_percent.toFixed(1)),
      h("td", { class: "num" }, (p.rss_bytes / MIB).toFixed(1)),
    );
  });
  if (row.note) rows.push(h("tr", {}, h("td", { colspan: "4", class: "note" }, row.note)));
  return h(
    "div",
    { class: "top-run-box", "data-run": run.id },
    heading,
    h(
      "table",
      { class: "procs" },
      h("thead", {}, h("tr", {}, ...["pid", "process", "CPU %", "memory MiB"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...rows),
    ),
  );
}
