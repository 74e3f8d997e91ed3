"""Measure chat on Matrix against a real Synapse (needs the test extras and .venv-synapse, from ./scripts/test).

    .venv/bin/python scripts/bench_chat.py --events 200 --commands 200

Two figures, p50 and p99, in a plain and in an end-to-end encrypted room:
- event -> visible: a pipeline event that is news (an item blocked, through the orchestrator as a
  person's order) until the person's Matrix client has the notice (decrypted, in the encrypted room);
- command -> reply: the person says "<bot>: status" until their client has gangline's answer.
Events are spaced past the room's throttle window, so each is a lone change (told at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gangline.chat.serving import chat_door
from gangline.core.stages import Trigger
from gangline.server.app import create_app
from gangline.server.serving import serving
from gangline.server.state import state_of
from kits.matrix_person import Person
from kits.pipeline_kit import FAST, Project
from kits.synapse import Synapse, fresh, start_synapse

LATER = 32503680000.0
WINDOW_S = 0.2


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1), "n": len(ordered)}  # fmt: skip


def _replies_to(content: dict[str, Any]) -> str | None:
    return (content.get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id")


async def bench_room(synapse: Synapse, tmp: Path, encrypted: bool, events: int, commands: int) -> dict[str, object]:
    bot = synapse.register(fresh("gangline"))
    async with Person.login(synapse, synapse.register(fresh("ann")), tmp / "ann") as person:
        room = await person.create_room("bench", encrypted=encrypted, invite=[bot.user_id])
        project = Project(tmp)
        project.agent("coder", [[{"hang": True}]])
        table = (f'[[chat]]\ntransport = "matrix"\nhomeserver = "{synapse.url}"\nuser = "{bot.user_id}"\n'
                 f'token_env = "BENCH_TOKEN"\nrooms = ["{room}"]\nallow = ["{person.user_id}"]\nwindow_s = {WINDOW_S}\n'
                 "per_minute = 600\n")  # fmt: skip
        project.configure(tables=table)
        item = project.add("Benchmark item")
        project.store.schedule_start(item.id, LATER, "bench")
        assert project.config is not None
        door = chat_door(project.config, project.paths, {"BENCH_TOKEN": bot.access_token})
        assert door is not None
        app = create_app(project.paths, project.config, project.store, {}, settings=FAST, doors=[door])
        name = bot.user_id.split(":")[0].removeprefix("@")
        async with serving(app):
            await person.wait_joined(room, bot.user_id)
            # Warm up: one round trip, so the bot has synced the room before anything is timed.
            said = await person.say(room, f"{name}: help")
            await person.wait_for(room, lambda m: m.sender == bot.user_id and _replies_to(m.content) == said)
            orch = state_of(app).running()
            seen: list[float] = []
            for n in range(events):
                start = time.perf_counter()
                await orch.act(item.id, Trigger.BLOCK, "bench", f"bench {n}")
                await person.wait_for(room, lambda m, n=n: m.sender == bot.user_id and m.body.endswith(f": bench {n}"))
                seen.append(time.perf_counter() - start)
                await orch.act(item.id, Trigger.UNBLOCK, "bench")
                await asyncio.sleep(WINDOW_S * 1.5)  # past the throttle window: the next is a lone change
            replies: list[float] = []
            for _ in range(commands):
                start = time.perf_counter()
                said = await person.say(room, f"{name}: status")
                await person.wait_for(
                    room, lambda m, said=said: m.sender == bot.user_id and _replies_to(m.content) == said
                )
                replies.append(time.perf_counter() - start)
    return {"room": "encrypted" if encrypted else "plain", "event_to_visible": _quantiles(seen),
            "command_to_reply": _quantiles(replies)}  # fmt: skip


async def main(events: int, commands: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, start_synapse(Path(tmp) / "synapse") as synapse:
        for encrypted in (False, True):
            room_dir = Path(tmp) / ("encrypted" if encrypted else "plain")
            room_dir.mkdir()
            print(json.dumps(await bench_room(synapse, room_dir, encrypted, events, commands)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.commands))
