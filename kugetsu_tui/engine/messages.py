"""What travels between the supervisor and everyone else: events it writes, requests
other processes leave it, the result of an action, why it ends an attempt, and the facts
it publishes about itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kugetsu_tui.engine.model import CapMode, EventType, iso


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    ts: float
    type: EventType
    task_id: int | None
    data: dict[str, Any]

    def __post_init__(self) -> None:
        # Rows read back from the store carry the type as text.
        if not isinstance(self.type, EventType):
            object.__setattr__(self, "type", EventType(self.type))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "ts": iso(self.ts), "type": self.type, "task_id": self.task_id, **self.data}

    def to_line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)


class RequestAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    CAP = "cap"


@dataclass(frozen=True, slots=True)
class Request:
    """Work for a running supervisor, left in the store by another process."""

    id: int
    action: RequestAction
    task_id: int | None
    arg: str | None


class Ending(StrEnum):
    """Why the supervisor is ending a live attempt; it decides how the attempt settles."""

    CANCEL = "cancel"  # a person asked: settled as cancelled, never retried
    TIMEOUT = "timeout"  # past the task's timeout: a failure, retried if attempts remain
    STOP = "stop"  # the supervisor stops with --stop-agents: queued again, attempt refunded
    STALL = "stall"  # no output and no CPU for stall_after, with on_stall = "fail": a failure
    REPORTED = "reported"  # the agent reported a rate limit or a fatal error: settled as it says


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What became of one action: done (or refused) now, or a request a supervisor will
    carry out (request_id set). The store keeps a supervisor's answer as text: encode() and
    decode() are the only places that know its form."""

    ok: bool
    message: str
    task_id: int | None = None
    request_id: int | None = None

    def encode(self) -> str:
        return f"{'ok' if self.ok else 'error'}: {self.message}"

    @classmethod
    def decode(cls, text: str, task_id: int | None = None, request_id: int | None = None) -> ActionResult:
        ok = text.startswith("ok: ")
        message = text.removeprefix("ok: ") if ok else text.removeprefix("error: ")
        return cls(ok, message, task_id, request_id)


@dataclass(frozen=True, slots=True)
class AgentSlots:
    """An agent's effective max_live as rate limits left it (of `max`, its ceiling), since
    when, and when a rate limit last cut it."""

    effective: int
    max: int
    since: float
    rate_limited_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "effective": self.effective,
            "max": self.max,
            "since": iso(self.since),
            "rate_limited_at": iso(self.rate_limited_at),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AgentSlots:
        return cls(
            int(value["effective"]),
            int(value["max"]),
            datetime.fromisoformat(value["since"]).timestamp(),
            datetime.fromisoformat(value["rate_limited_at"]).timestamp(),
        )


def agent_slots(ceilings: Mapping[str, int], lowered: Mapping[str, AgentSlots]) -> dict[str, Any]:
    """`status --json`'s `agents`: each agent's `slots`, as rate limits lowered them
    (`since` null: they were not)."""
    full = {"since": None, "rate_limited_at": None}
    return {
        agent: {
            "slots": lowered[agent].to_json() if agent in lowered else {"effective": top, "max": top, **full}
        }
        for agent, top in ceilings.items()
    }


def lowered_limits(agents: Mapping[str, Any]) -> dict[str, int]:
    """From `agent_slots`: the agents rate limits hold below their ceiling -> effective."""
    return {a: int(v["slots"]["effective"]) for a, v in agents.items() if v["slots"]["since"] is not None}


@dataclass(frozen=True, slots=True)
class SupervisorFacts:
    """What a running supervisor last published about itself (one meta row per field in
    the store): written by the advisor, read by `status` and by attached dashboards."""

    supervisor_pid: int | None = None  # None: one runs, its pid not known yet
    cap: int | None = None
    cap_mode: CapMode | None = None
    suggested_cap: int | None = None
    cap_reason: str | None = None
    machine: dict[str, Any] | None = None  # capacity.Machine.to_json()
    admission_blocked: str | None = None
    config_error: str | None = None
    cooldowns: Mapping[str, float] = field(default_factory=dict)  # agent -> until (epoch seconds)
    # Agents whose effective max_live rate limits lowered: agent -> AgentSlots.
    slots: Mapping[str, AgentSlots] = field(default_factory=dict)

    def to_meta(self) -> dict[str, Any]:
        """The facts as JSON values, one per meta row (times as ISO text)."""
        return {
            "supervisor_pid": self.supervisor_pid,
            "cap": self.cap,
            "cap_mode": None if self.cap_mode is None else str(self.cap_mode),
            "suggested_cap": self.suggested_cap,
            "cap_reason": self.cap_reason,
            "machine": self.machine,
            "admission_blocked": self.admission_blocked,
            "config_error": self.config_error,
            "cooldowns": {agent: iso(until) for agent, until in self.cooldowns.items()},
            "slots": {agent: slots.to_json() for agent, slots in self.slots.items()},
        }

    @classmethod
    def from_meta(cls, values: Mapping[str, Any]) -> SupervisorFacts:
        """From meta rows; any row may be missing (a reader drops the stale ones)."""

        def whole(key: str) -> int | None:
            value = values.get(key)
            return None if value is None else int(value)

        mode = values.get("cap_mode")
        return cls(
            supervisor_pid=whole("supervisor_pid"),
            cap=whole("cap"),
            cap_mode=CapMode(mode) if isinstance(mode, str) and mode in CapMode._value2member_map_ else None,
            suggested_cap=whole("suggested_cap"),
            cap_reason=values.get("cap_reason"),
            machine=values.get("machine"),
            admission_blocked=values.get("admission_blocked"),
            config_error=values.get("config_error"),
            cooldowns={
                agent: datetime.fromisoformat(until).timestamp()
                for agent, until in (values.get("cooldowns") or {}).items()
            },
            slots={agent: AgentSlots.from_json(v) for agent, v in (values.get("slots") or {}).items()},
        )
