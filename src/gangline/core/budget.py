"""Spend while a run streams: a price table and a meter the server checks against the budget.

Claude Code reports its cost only in its final ``result``; a run that loops can spend far past
``--max-budget-usd`` before that if the CLI's own check misfires, so the server keeps its own
estimate from each message's usage and stops the run when the estimate passes the budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gangline.core.events import Event, MessageDelta, MessageStarted, Result, Usage


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / 1_000_000


# Public list prices by model family; the most expensive family is assumed for unknown models,
# so an estimate errs towards stopping early rather than overspending.
_FAMILIES = {
    "opus": Price(15.0, 75.0, 18.75, 1.5),
    "sonnet": Price(3.0, 15.0, 3.75, 0.3),
    "haiku": Price(1.0, 5.0, 1.25, 0.1),
}


def price_for(model: str | None, table: Mapping[str, Price] | None = None) -> Price:
    """The project's ``[price."<model>"]`` if it has one, else the list price of the model's family."""
    if table and model is not None and model in table:
        return table[model]
    name = (model or "").lower()
    for family, price in _FAMILIES.items():
        if family in name:
            return price
    return _FAMILIES["opus"]


class BudgetMeter:
    """Feeds on a run's events; ``exceeded`` says so once the spend passes the limit."""

    def __init__(self, limit_usd: float | None, prices: Mapping[str, Price] | None = None) -> None:
        self.limit_usd = limit_usd
        self.prices = prices
        self.spent_usd = 0.0
        self._model: str | None = None
        self._final = False

    def feed(self, event: Event) -> None:
        if isinstance(event, MessageStarted) and event.model:
            self._model = event.model
        elif isinstance(event, MessageDelta) and event.usage is not None and not self._final:
            self.spent_usd += price_for(self._model, self.prices).cost(event.usage)
        elif isinstance(event, Result) and event.cost_usd is not None:
            self.spent_usd = event.cost_usd  # the CLI's own figure replaces the estimate
            self._final = True

    @property
    def exceeded(self) -> bool:
        return self.limit_usd is not None and self.spent_usd > self.limit_usd

    def note(self) -> str:
        limit = f" of ${self.limit_usd:.2f}" if self.limit_usd is not None else ""
        return f"budget exceeded: spent ${self.spent_usd:.2f}{limit}"
