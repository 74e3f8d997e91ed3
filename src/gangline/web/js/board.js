// The board: a column per stage, a card per item, moving as the pipeline moves.
// Cards are keyed by item id and redrawn only when their item changed, so a card a person is
// about to click does not vanish under the pointer while other cards update.

import { actionButtons } from "./actions.js";
import { activityLine } from "./activity.js";
import { duration, fill, h, HOLD_LABELS, money, STAGE_LABELS, STAGES } from "./dom.js";
import { watchItems } from "./feed.js";
import { mountOnboarding } from "./onboarding.js";

const ARCHIVED_SHOWN = 20;

export function mountBoard(main) {
  const columns = {};
  const board = h(
    "div",
    { class: "board", "aria-label": "Board" },
    STAGES.map((stage) => {
      const list = h("ol", { class: "cards", "aria-labelledby": `col-${stage}` });
      const count = h("span", { class: "count" }, "0");
      const column = h(
        "section",
        { class: `column column-${stage}`, "data-stage": stage },
        h("h2", { id: `col-${stage}` }, STAGE_LABELS[stage], " ", count),
        list,
      );
      columns[stage] = { column, list, count };
      return column;
    }),
  );
  const setUp = h("div", { class: "onboarding-slot", hidden: true });
  fill(main, h("h1", { class: "visually-hidden" }, "Board"), setUp, board);
  const onboarding = mountOnboarding(setUp);

  const cards = new Map(); // id -> { element, json }
  const stop = watchItems((items) => {
    const seen = new Set();
    for (const stage of STAGES) {
      let inStage = items.filter((item) => item.stage === stage).sort(order);
      columns[stage].count.textContent = String(inStage.length);
      if (stage === "archived") inStage = inStage.slice(-ARCHIVED_SHOWN);
      const list = columns[stage].list;
      inStage.forEach((item, index) => {
        seen.add(item.id);
        const json = JSON.stringify(item);
        let entry = cards.get(item.id);
        if (!entry) {
          entry = { element: h("li", { class: "card-slot" }), json: "" };
          cards.set(item.id, entry);
        }
        if (entry.json !== json) {
          redraw(entry.element, item);
          entry.json = json;
        }
        if (list.children[index] !== entry.element) {
          keepFocus(entry.element, () => list.insertBefore(entry.element, list.children[index] || null));
        }
      });
      if (!inStage.length) fill(list);
    }
    for (const [id, entry] of cards) {
      if (!seen.has(id)) {
        entry.element.remove();
        cards.delete(id);
      }
    }
    document.getElementById("main").dataset.ready = "true";
  });

  // The clocks on running and parked cards ("running 2m 10s", "parked until 14:05").
  const ticker = setInterval(() => {
    for (const el of board.querySelectorAll("[data-since]")) {
      el.textContent = duration(Date.now() / 1000 - Number(el.dataset.since));
    }
  }, 1000);

  return {
    dispose() {
      stop();
      clearInterval(ticker);
      onboarding.dispose();
    },
    event(row) {
      if (row && row.kind === "config_applied") onboarding.refresh(); // a gate or a coder may have come
    },
  };
}

/** Higher priority first, then oldest first: the order the scheduler takes them in. */
function order(a, b) {
  return b.priority - a.priority || a.id - b.id;
}

/** Moving a node blurs it; give focus back so keyboard users are not thrown to the top. */
function keepFocus(element, move) {
  const focused = element.contains(document.activeElement) ? document.activeElement : null;
  move();
  if (focused && document.activeElement !== focused) focused.focus();
}

function redraw(slot, item) {
  const focusedAction = slot.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const holdClass = item.hold ? ` held held-${item.hold}` : "";
  const card = h(
    "article",
    {
      class: `card kind-${item.kind} activity-${item.activity.state}${holdClass}${item.frozen ? " frozen" : ""}`,
      "data-item": item.id,
      "data-stage": item.stage,
      "aria-labelledby": `card-title-${item.id}`,
    },
    h(
      "header",
      { class: "card-head" },
      h("span", { class: `kind kind-${item.kind}` }, item.kind),
      h("span", { class: "id" }, `#${item.id}`),
      item.priority ? h("span", { class: "priority", title: "priority" }, `p${item.priority}`) : null,
    ),
    h(
      "h3",
      { class: "title", id: `card-title-${item.id}` },
      h("a", { href: `#/items/${item.id}` }, item.title),
    ),
    activityLine(item.activity, { holds: false }),
    item.hold ? h("p", { class: `hold hold-${item.hold}` }, HOLD_LABELS[item.hold], item.hold_reason ? `: ${item.hold_reason}` : "") : null,
    facts(item),
    h("div", { class: "actions" }, actionButtons(item, "card")),
  );
  fill(slot, card);
  if (focusedAction) {
    const again = slot.querySelector(`[data-action="${CSS.escape(focusedAction)}"]`);
    (again || slot.querySelector("a")).focus();
  }
}

function facts(item) {
  const out = [];
  if (item.retries) out.push(h("span", { class: "retries", title: "retries used" }, `↻ ${item.retries}`));
  if (item.cost_usd) out.push(h("span", { class: "cost", title: "cost so far" }, money(item.cost_usd)));
  if (item.depends_on.length) out.push(h("span", { class: "deps" }, `needs ${item.depends_on.map((d) => `#${d}`).join(", ")}`));
  return out.length ? h("p", { class: "facts" }, out) : null;
}
