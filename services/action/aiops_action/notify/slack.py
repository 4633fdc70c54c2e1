"""Slack incoming-webhook messages in Block Kit, every piece of incident text escaped for mrkdwn."""

from __future__ import annotations

import json

from aiops_common.schemas.incidents import IncidentSeverity

from aiops_action.notify.messages import EventKind, Notification

__all__ = ["SEVERITY_COLOURS", "escape_mrkdwn", "slack_body", "slack_payload"]

SEVERITY_COLOURS: dict[IncidentSeverity, str] = {
    IncidentSeverity.INFO: "#439FE0",
    IncidentSeverity.WARNING: "#F2C744",
    IncidentSeverity.MINOR: "#F2994A",
    IncidentSeverity.MAJOR: "#E8590C",
    IncidentSeverity.CRITICAL: "#D00000",
}
_HEADER_MAX = 150  # Block Kit's limit for a header's text
_TEXT_MAX = 2900  # a section's text may hold 3000


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters as entities: ``<!channel>`` or ``<https://x|y>`` stay plain text.

    >>> escape_mrkdwn("<!channel> <https://evil|click> & co")
    '&lt;!channel&gt; &lt;https://evil|click&gt; &amp; co'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _md(text: str, limit: int = _TEXT_MAX) -> str:
    """Escaped and at most ``limit`` characters long; cut before escaping so an entity is never split in half."""
    escaped = escape_mrkdwn(_cut(text, limit))
    while len(escaped) > limit:
        text = text[: max(0, len(text) - (len(escaped) - limit) - 3)]
        escaped = escape_mrkdwn(_cut(text + "...", limit))
    return escaped


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_payload(n: Notification) -> dict[str, object]:
    """The JSON of one message: a header, the facts as fields, cause and evidence, action, and a link button.

    Every piece of text goes through :func:`escape_mrkdwn`, the plain-text ones (header, button) too: Slack
    decodes the three entities everywhere, and an escaped ``<`` can never open a link or a mention.
    """
    prefix = "Update: " if n.update else ""
    header = _md(f"{prefix}[{n.severity.value.upper()}] {n.title}", _HEADER_MAX)
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
    ]
    if n.text:
        blocks.append(_section(_md(n.text)))
    fields = [{"type": "mrkdwn", "text": f"*{_md(k, 100)}*\n{_md(v, 1800)}"} for k, v in n.fields[:10]]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if n.cause:
        evidence = "".join(f"\n• {_md(e, 500)}" for e in n.evidence)
        blocks.append(_section(f"*Probable cause:* {_md(n.cause, 500)}{evidence}"))
    if n.proposed_action:
        blocks.append(_section(f"*Proposed action:* {_md(n.proposed_action, 1000)}"))
    if n.link:
        style = {"style": "primary"} if n.kind is EventKind.APPROVAL else {}
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": _md(n.link_label, 75)},
                        "url": n.link,
                        **style,
                    }
                ],
            }
        )
    return {
        # the top-level text is what notifications and screen readers show
        "text": header,
        "attachments": [{"color": SEVERITY_COLOURS[n.severity], "blocks": blocks}],
    }


def slack_body(n: Notification) -> tuple[bytes, dict[str, str]]:
    return json.dumps(slack_payload(n)).encode(), {"Content-Type": "application/json"}
