// The board's onboarding: shown above the columns while the project has no gate or no coder this
// machine can start (GET /api/onboarding). It offers what `gangline init` offers: the gates the
// project's stack suggests, each proven by running it once before it is added
// (POST /api/onboarding/gates), and the agent CLIs found on the server's PATH.

import { api } from "./api.js";
import { fill, h, say } from "./dom.js";

const HIDDEN_KEY = "gangline.onboarding.hidden";
const INSTALL = "npm install -g @anthropic-ai/claude-code";

/** Draw the panel in `slot` when the project needs it; `refresh()` asks the server again. */
export function mountOnboarding(slot) {
  let disposed = false;

  async function refresh() {
    if (disposed || sessionStorage.getItem(HIDDEN_KEY)) return;
    let found;
    try {
      found = await api("/api/onboarding?when_needed=true");
    } catch (err) {
      fill(slot, h("p", { class: "onboarding-error", role: "alert" }, `Could not check the project's set-up: ${err.message}`));
      return;
    }
    if (disposed) return;
    slot.hidden = !found.needed;
    fill(slot, ...(found.needed ? panel(found, refresh, hide) : []));
    slot.dataset.ready = "true"; // for tests: the panel shows what the server said
  }

  function hide() {
    sessionStorage.setItem(HIDDEN_KEY, "1");
    slot.hidden = true;
  }

  refresh();
  return {
    refresh,
    dispose() {
      disposed = true;
    },
  };
}

function panel(found, refresh, hide) {
  const parts = [
    h("h2", { id: "onboarding-heading" }, "Set up this project"),
    h("button", { type: "button", class: "hide", "aria-label": "Hide the set-up for this session" }, "Hide"),
  ];
  parts[1].addEventListener("click", hide);
  if (!found.gates) parts.push(...gatesPart(found, refresh));
  if (!found.coders.length) parts.push(...agentsPart(found));
  else parts.push(h("p", {}, `Coders ready: ${found.coders.join(", ")}.`));
  return [h("section", { class: "onboarding", "aria-labelledby": "onboarding-heading" }, ...parts)];
}

function gatesPart(found, refresh) {
  const intro = h(
    "p",
    {},
    "No gates yet: nothing checks the agents' work before it is merged. ",
    found.stacks.length ? `This repository uses ${found.stacks.join(", ")}; ` : "",
    found.proposals.length ? "these checks would fit. Each is run once in a fresh worktree before it is added." : "add your checks as [[gate]] tables in .gangline/project.toml.",
  );
  const list = h("ul", { class: "proposals" }, ...found.proposals.map((proposal) => proposalRow(proposal, refresh)));
  return found.proposals.length ? [intro, list] : [intro];
}

function proposalRow(proposal, refresh) {
  if (proposal.point) return hookRow(proposal);
  const result = h("div", { class: "proof", "aria-live": "polite" });
  const tryButton = h("button", { type: "button", class: "primary", "data-gate": proposal.name }, "Try and add");
  const row = h(
    "li",
    { "data-gate": proposal.name },
    h("strong", {}, proposal.name),
    " ",
    h("code", {}, proposal.command),
    h("span", { class: "why" }, ` (${proposal.why})`),
    " ",
    tryButton,
    result,
  );
  async function add(anyway) {
    tryButton.disabled = true;
    fill(result, h("p", { class: "running" }, "Running it once…"));
    try {
      const proof = await api("/api/onboarding/gates", { method: "POST", body: { name: proposal.name, command: proposal.command, anyway } });
      row.dataset.outcome = proof.added ? "added" : "failed";
      fill(result, ...proofView(proof, () => add(true)));
      if (proof.added) {
        say(`Gate ${proof.name}: ${proof.note}`);
        refresh();
      }
    } catch (err) {
      fill(result, h("p", { class: "onboarding-error", role: "alert" }, err.message));
    } finally {
      tryButton.disabled = false;
    }
  }
  tryButton.addEventListener("click", () => add(false));
  return row;
}

// A hook readies every worktree before the gates run: it belongs in [hooks], which a person edits (the edit is
// in force at once); the gates proposed with it are proven after it.
function hookRow(proposal) {
  return h(
    "li",
    { "data-hook": proposal.point },
    h("strong", {}, `${proposal.point} hook`),
    " ",
    h("code", {}, proposal.command),
    h("span", { class: "why" }, ` (${proposal.why}): add `),
    h("code", {}, `${proposal.point} = ${JSON.stringify(proposal.command)}`),
    " under [hooks] in .gangline/project.toml; gates are proven after it.",
  );
}

function proofView(proof, addAnyway) {
  const parts = [h("p", { class: proof.passed ? "passed" : "failed" }, `${proof.passed ? "✓" : "✗"} ${proof.outcome} in ${proof.duration_s.toFixed(1)} s: ${proof.note}`)];
  if (!proof.passed) {
    parts.push(h("pre", { class: "output" }, proof.output.split("\n").slice(-12).join("\n")));
    if (!proof.added) {
      const anyway = h("button", { type: "button", "data-anyway": proof.name }, "Add anyway");
      anyway.addEventListener("click", addAnyway);
      parts.push(anyway);
    }
  }
  return parts;
}

function agentsPart(found) {
  if (!found.clis.length) {
    return [
      h("p", {}, "No coder this machine can start, and no agent CLI on the server's PATH. Install one, e.g. ", h("code", {}, INSTALL), " (or Codex, Gemini CLI), then name it in .gangline/project.toml."),
    ];
  }
  return [
    h("p", {}, "No coder this machine can start. Agent CLIs found on the server's PATH; set a coder's cli to one of them in .gangline/project.toml:"),
    h("ul", { class: "clis" }, ...found.clis.map((cli) => h("li", {}, h("strong", {}, cli.kind), ` ${cli.version} `, h("code", {}, cli.path)))),
  ];
}
