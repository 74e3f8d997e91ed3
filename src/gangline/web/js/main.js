// The page: routes (#/, #/items/<id>, #/costs, #/nodes, #/top), the shared event stream, the server's health,
// the rate-limit and configuration banners and the permission panel that follow the person across views.

import { api, health, setToken, token } from "./api.js";
import { mountBoard } from "./board.js";
import { mountCosts } from "./costs.js";
import { clock, fill, h, say } from "./dom.js";
import { changed, connect, onEvent, refresh, watchItems } from "./feed.js";
import { openItemForm } from "./forms.js";
import { mountItem } from "./item.js";
import { mountNodes } from "./nodes.js";
import { mountPermissions } from "./permissions.js";
import { mountTop } from "./top.js";

const main = document.getElementById("main");
let view = null;
let streamState = "connecting";

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const item = hash.match(/^\/items\/(\d+)$/);
  if (item) return { name: "item", mount: () => mountItem(main, Number(item[1])) };
  if (hash === "/costs") return { name: "costs", mount: () => mountCosts(main) };
  if (hash === "/nodes") return { name: "nodes", mount: () => mountNodes(main) };
  if (hash === "/top") return { name: "top", mount: () => mountTop(main) };
  return { name: "board", mount: () => mountBoard(main) };
}

function show() {
  if (view) view.dispose();
  delete main.dataset.ready;
  const next = route();
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === next.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `gangline · ${next.name === "item" ? location.hash.slice(2) : next.name}`;
  view = next.mount();
}

// --- health: the server, its database and its pipeline, and the live connection -------------

const healthEl = document.getElementById("health");

async function checkHealth() {
  const status = await health();
  let text;
  let state;
  if (status.offline) [text, state] = ["server unreachable", "bad"];
  else if (!status.db) [text, state] = ["database down", "bad"];
  else if (!status.orchestrator) [text, state] = ["pipeline stopped", "bad"];
  else if (streamState !== "open") [text, state] = ["reconnecting…", "warn"];
  else [text, state] = ["live", "ok"];
  healthEl.textContent = text;
  healthEl.dataset.state = state;
  healthEl.title = `database ${status.db ? "up" : "down"}, pipeline ${status.orchestrator ? "running" : "stopped"}`;
}

// --- the rate-limit banner -------------------------------------------------------------------

const banner = document.getElementById("banner");

function drawBanner(items) {
  const parked = items.filter((item) => item.activity.state === "parked");
  const throttled = items.filter((item) => item.activity.state === "throttled");
  banner.hidden = !parked.length && !throttled.length;
  if (banner.hidden) return;
  const parts = [h("strong", {}, "Rate limited. ")];
  if (parked.length) {
    const soonest = Math.min(...parked.map((item) => item.activity.until));
    parts.push(
      `${parked.length} item${parked.length > 1 ? "s" : ""} parked (${parked.map((i) => `#${i.id}`).join(", ")}); `,
      "the first resumes at ",
      h("time", { datetime: new Date(soonest * 1000).toISOString() }, clock(soonest)),
      ". ",
    );
  }
  if (throttled.length) {
    const resets = throttled.map((item) => item.activity.until).filter(Boolean);
    parts.push(`${throttled.length} agent${throttled.length > 1 ? "s" : ""} waiting on the model API`);
    if (resets.length) parts.push(" until ", h("time", { datetime: new Date(Math.min(...resets) * 1000).toISOString() }, clock(Math.min(...resets))));
    parts.push(` (${throttled.map((i) => `#${i.id}`).join(", ")}).`);
  }
  fill(banner, parts);
}

// --- the configuration: an edit of project.toml refused, or waiting for a restart ----------------

const configBanner = document.getElementById("config-banner");

async function drawConfig() {
  let status;
  try {
    status = await api("/api/status");
  } catch {
    return; // the health badge says the server is unreachable
  }
  const config = status.config;
  const parts = [];
  if (config && config.error) {
    parts.push(
      h("strong", {}, "project.toml: an edit was refused"),
      ` at ${clock(config.refused_at)}; the last good configuration stays in force. `,
      h("code", { class: "config-error" }, config.error),
    );
  }
  if (config && config.restart_needed.length) {
    parts.push(h("p", {}, `Edited, taking effect when the server starts again: ${config.restart_needed.join(", ")}.`));
  }
  configBanner.hidden = !parts.length;
  fill(configBanner, parts);
  configBanner.dataset.ready = "true"; // for tests: drawn from what the server said
}

// --- a server with a token -------------------------------------------------------------------

function askToken() {
  const dialog = document.getElementById("dialog");
  if (dialog.open) return;
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  dialog.replaceChildren(
    h(
      "form",
      { method: "dialog", class: "token-form" },
      h("h2", {}, "Sign in to this server"),
      h(
        "p",
        { class: "hint" },
        "Open the login link gangline serve printed, or run gangline login in the project for a new one. " +
          "Or paste the project's secret (.gangline/secret) or the server's GANGLINE_TOKEN here:",
      ),
      h("label", { for: "token" }, "Secret or token"),
      input,
      h("p", { class: "hint" }, "Kept in this tab only, until you close it."),
      h("div", { class: "buttons" }, h("button", { type: "submit", value: "ok", class: "primary" }, "Connect")),
    ),
  );
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "ok" && input.value) {
        setToken(input.value.trim());
        start();
      }
    },
    { once: true },
  );
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
}

window.addEventListener("gangline:unauthorized", () => {
  if (token()) {
    setToken(null);
    say("The token was refused.", "error");
  }
  askToken();
});

// --- start -----------------------------------------------------------------------------------

let started = false;

function start() {
  connect((state) => {
    streamState = state;
    checkHealth();
  });
  refresh();
  show();
  if (started) return;
  started = true;
  mountPermissions(document.getElementById("permissions"));
  watchItems(drawBanner);
  onEvent((row) => view && view.event(row));
  onEvent((row) => row && row.kind.startsWith("config_") && drawConfig());
  drawConfig();
  window.addEventListener("hashchange", show);
  window.addEventListener("gangline:item", (e) => changed(e.detail));
  window.addEventListener("gangline:edit", (e) => openItemForm(e.detail));
  document.getElementById("new-item").addEventListener("click", async () => {
    const item = await openItemForm();
    if (item) location.hash = `#/items/${item.id}`;
  });
  setInterval(checkHealth, 5000);
  setInterval(() => watchItemsTick(), 1000);
}

// Parked and scheduled times pass without an event: re-read when one falls due.
function watchItemsTick() {
  const now = Date.now() / 1000;
  if (dueTimes.some((t) => t <= now)) {
    dueTimes = [];
    refresh();
  }
}
let dueTimes = [];
watchItems((items) => {
  dueTimes = items.map((item) => item.activity.until).filter((t) => t && t > Date.now() / 1000);
});

start();
