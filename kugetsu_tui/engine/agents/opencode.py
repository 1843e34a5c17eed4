"""opencode's `run --format json`: the session id, text parts (the last is the final
message), each step's tokens and cost, and errors with the API's status code. Pure."""

from __future__ import annotations

from typing import Any

from kugetsu_tui.engine.agents.reading import Acc, Reported, int_or_none


def read(event: dict[str, Any], acc: Acc) -> None:
    kind = event.get("type")
    if isinstance(event.get("sessionID"), str):
        acc.session_id = event["sessionID"]
    part = event.get("part") or {}
    if kind == "text" and isinstance(part.get("text"), str):
        acc.result = part["text"]
    elif kind == "step_finish":
        tokens = part.get("tokens") or {}
        acc.add_tokens(tokens.get("input"), tokens.get("output"), part.get("cost"))
    elif kind == "error":
        error = event.get("error") or {}
        data = error.get("data") or {}
        text = str(data.get("message") or error.get("name") or "error")
        acc.errors.append(Reported(text, int_or_none(data.get("statusCode")), error.get("name")))
