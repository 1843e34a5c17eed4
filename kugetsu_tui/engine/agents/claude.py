"""claude's `--output-format stream-json`: the session id on every event, `api_retry`
system events (status, error code, the delay the server asked for), assistant messages
that carry an error, and the closing `result` event (final message, usage, total cost,
whether it failed). Pure."""

from __future__ import annotations

from typing import Any

from kugetsu_tui.engine.agents.reading import Acc, Reported, int_or_none

_INPUTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def read(event: dict[str, Any], acc: Acc) -> None:
    kind = event.get("type")
    if isinstance(event.get("session_id"), str):
        acc.session_id = event["session_id"]
    if kind == "system" and event.get("subtype") == "api_retry":
        acc.errors.append(_retry(event))
    elif kind == "assistant" and event.get("error"):
        acc.errors.append(_assistant_error(event))
    elif kind == "result":
        _result(event, acc)


def _retry(event: dict[str, Any]) -> Reported:
    """An API error claude retries by itself: its status, code and the delay it waits."""
    status = event.get("error_status")
    delay = event.get("retry_delay_ms")
    code = str(event.get("error") or "") or None
    return Reported(
        f"API error {status} ({code}), retry {event.get('attempt')} of {event.get('max_retries')}",
        int_or_none(status),
        code,
        float(delay) / 1000 if isinstance(delay, int | float) else None,
    )


def _assistant_error(event: dict[str, Any]) -> Reported:
    """An assistant message standing for an error: its text, else the error's name."""
    content = (event.get("message") or {}).get("content") or []
    texts = [c.get("text", "") for c in content if isinstance(c, dict)]
    return Reported(" ".join(t for t in texts if t) or str(event["error"]), None, str(event["error"]))


def _result(event: dict[str, Any], acc: Acc) -> None:
    """The closing event: the final message, the usage and cost, and whether it failed."""
    if isinstance(event.get("result"), str):
        acc.result = event["result"]
    usage = event.get("usage") or {}
    acc.add_tokens(_input_tokens(usage), usage.get("output_tokens"), event.get("total_cost_usd"))
    if event.get("is_error"):
        text = str(event.get("result") or event.get("subtype"))
        acc.errors.append(Reported(text, int_or_none(event.get("api_error_status"))))


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """Input tokens, cache writes and reads together; None when none of them was said."""
    counts = [v for v in (usage.get(k) for k in _INPUTS) if isinstance(v, int)]
    return sum(counts) if counts else None
