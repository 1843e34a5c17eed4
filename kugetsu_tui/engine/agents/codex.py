"""codex's `exec --json`: the thread id, the agent's last message, each turn's usage, and
errors (`error`, and `turn.failed` which repeats it). codex reports no cost. Pure."""

from __future__ import annotations

from typing import Any

from kugetsu_tui.engine.agents.reading import Acc, Reported, status_in


def read(event: dict[str, Any], acc: Acc) -> None:
    kind = event.get("type")
    if kind == "thread.started" and isinstance(event.get("thread_id"), str):
        acc.session_id = event["thread_id"]
    elif kind == "item.completed":
        item = event.get("item") or {}
        if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
            acc.result = item["text"]
    elif kind == "turn.completed":
        usage = event.get("usage") or {}
        acc.add_tokens(usage.get("input_tokens"), usage.get("output_tokens"))
    elif kind in ("error", "turn.failed"):
        _error(kind, event, acc)


def _error(kind: str, event: dict[str, Any], acc: Acc) -> None:
    message = event.get("message") if kind == "error" else (event.get("error") or {}).get("message")
    text = str(message or kind)
    if not any(e.text == text for e in acc.errors):  # turn.failed repeats the error
        acc.errors.append(Reported(text, status_in(text)))
