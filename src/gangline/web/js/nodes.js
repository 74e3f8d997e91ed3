// The build nodes view: every node that joined, live or gone, what it offers, its runs and
// when it was last heard from; a join token for a new one, and draining one (GET /api/nodes).

import { api } from "./api.js";
import { duration, fill, h, say } from "./dom.js";

const REFRESH_ON = new Set(["node_joined", "node_draining", "node_undrained", "run_leased", "run_finished"]);
const HEARTBEAT_MS = 5000;
const EMPTY = "No build node has joined. Make a join token, then run the command it shows on the other machine.";

/** Mount the view in `main`; `event(row)` takes pipeline events, `dispose()` stops everything. */
export function mountNodes(main) {
  const root = h("section", { class: "nodes-view", "aria-labelledby": "nodes-heading", "aria-busy": "true" });
  const tokenButton = h("button", { type: "button", class: "primary", id: "node-token" }, "Make a join token");
  const joining = h("div", { class: "joining", "aria-live": "polite" });
  const body = h("div", { class: "nodes-body" }, h("p", { class: "loading" }, "Loading nodes…"));
  root.append(h("h1", { id: "nodes-heading" }, "Build nodes"), h("div", { class: "bar" }, tokenButton), joining, body);
  fill(main, root);

  let disposed = false;
  let timer = setInterval(load, HEARTBEAT_MS); // "last heard" ages without an event

  async function load() {
    if (disposed) return;
    try {
      const nodes = await api("/api/nodes");
      if (disposed) return;
      fill(body, nodes.length ? table(nodes, load) : h("p", { class: "empty" }, EMPTY));
    } catch (err) {
      fill(body, h("p", { class: "nodes-error", role: "alert" }, `Could not load the nodes: ${err.message}`));
    }
    root.setAttribute("aria-busy", "false");
    main.dataset.ready = "true"; // for tests: the view has drawn what the server said
  }

  tokenButton.addEventListener("click", async () => {
    tokenButton.disabled = true;
    try {
      const made = await api("/api/nodes/token", { method: "POST" });
      const command = `gangline node --server ${location.origin} --token ${made.token}`;
      fill(
        joining,
        h("p", {}, "On the machine that should run agents, within the hour (the token works once):"),
        h("pre", { class: "command" }, h("code", {}, command)),
      );
    } catch (err) {
      say(`Could not make a join token: ${err.message}`, "error");
    } finally {
      tokenButton.disabled = false;
    }
  });

  load();
  return {
    dispose() {
      disposed = true;
      clearInterval(timer);
      timer = null;
    },
    event(row) {
      if (!disposed && row && REFRESH_ON.has(row.kind)) load();
    },
  };
}

function table(nodes, reload) {
  const now = Date.now() / 1000;
  return h(
    "table",
    { class: "nodes" },
    h("thead", {}, h("tr", {}, ...["Node", "State", "Slots", "Labels", "Agent CLIs", "Last heard", "Runs", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...nodes.map((node) => row(node, now, reload))),
  );
}

function row(node, now, reload) {
  const state = node.draining ? "draining" : node.live ? "live" : "gone";
  const drain = h("button", { type: "button", "data-node": node.name }, node.draining ? "Give runs again" : "Drain");
  drain.addEventListener("click", async () => {
    drain.disabled = true;
    try {
      await api(`/api/nodes/${encodeURIComponent(node.name)}/drain`, { method: "POST", body: { draining: !node.draining } });
      say(node.draining ? `${node.name} takes runs again` : `${node.name} is draining: it finishes its runs and takes no more`);
    } catch (err) {
      say(`Could not change ${node.name}: ${err.message}`, "error");
    }
    reload();
  });
  const runs = node.runs.map((id) => {
    const item = id.match(/^(\d+)-/);
    return item ? h("a", { href: `#/items/${item[1]}` }, id) : h("span", {}, id);
  });
  return h(
    "tr",
    { "data-node": node.name, "data-state": state },
    h("th", { scope: "row" }, node.name),
    h("td", {}, h("span", { class: `node-state node-${state}` }, state)),
    h("td", {}, Object.entries(node.slots).map(([role, n]) => `${role} ${n}`).join(", ") || "none"),
    h("td", {}, node.labels.join(", ") || "—"),
    h("td", {}, Object.entries(node.clis).map(([cli, v]) => (v === "unknown" ? cli : `${cli} ${v}`)).join(", ") || "—"),
    h("td", {}, `${duration(now - node.seen_at)} ago`),
    h("td", { class: "runs" }, ...(runs.length ? runs.flatMap((link, i) => (i ? [", ", link] : [link])) : ["—"])),
    h("td", {}, drain),
  );
}
