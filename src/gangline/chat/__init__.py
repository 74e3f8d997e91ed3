"""Chat doors: one transport per platform behind one protocol, the commands, the notices, the courier.

``TRANSPORTS`` names each transport's class by the ``transport`` key of a ``[[chat]]`` table;
a platform's client library is imported only when a table names it.
"""

from __future__ import annotations

TRANSPORTS: dict[str, str] = {
    "matrix": "gangline.chat.matrix:MatrixTransport",
    "slack": "gangline.chat.slack:SlackTransport",
    "discord": "gangline.chat.discord:DiscordTransport",
    "whatsapp": "gangline.chat.whatsapp:WhatsAppTransport",
    "webhook": "gangline.chat.webhook:WebhookTransport",
}
# What to install for a transport whose client library is missing (pip install 'gangline[<extra>]').
EXTRAS = {"matrix": "matrix", "slack": "slack", "discord": "discord", "whatsapp": "whatsapp"}
