"""What an attempt printed, as the supervisor reads it: once when the attempt is settled
(its verdict, and its final message and reported usage on the task), and on each usage
sample while it runs (an error its agent reported that ends it now; a stall).

The log is read from its tail, bounded, and not at all for a clean exit of an agent whose
output has no parser: that read happens once per task, on the dispatch path.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from kugetsu_tui.engine import agents, runner
from kugetsu_tui.engine.agents import Outcome, Verdict
from kugetsu_tui.engine.config import format_duration
from kugetsu_tui.engine.messages import Ending
from kugetsu_tui.engine.model import AgentUsage, EventType
from kugetsu_tui.engine.supervisor.attempt import Proc, end

if TYPE_CHECKING:
    from kugetsu_tui.engine.supervisor.loop import Supervisor

READ_LOG = 256 * 1024  # the log tail read for an attempt's result, usage and errors
# A plain-text agent's log is only searched for the line that says why it failed: the end.
READ_TEXT_LOG = 32 * 1024
SUCCESS = Verdict(Outcome.SUCCEEDED, None)


def read_attempt(sup: Supervisor, proc: Proc, now: float, status: int | None) -> Verdict:
    """Read what the attempt printed (engine/agents): its final message and reported usage go
    on the task; the verdict says whether it succeeded, failed, hit a rate limit or a fatal
    error. The attempt's footer closes its part of the log."""
    agent = sup.config.agents.get(proc.agent)
    parsed = agent is not None and agent.output in agents.PARSERS
    if status == 0 and proc.ending is None and not parsed:
        write_footer(sup, proc, now, status, None)
        return SUCCESS  # a clean exit of an agent with no parser: its log cannot change that
    log = sup.home.log_path(proc.task_id)
    tail = runner.log_tail(log, READ_LOG if parsed else READ_TEXT_LOG)
    reading = agents.read_log(agent.output if agent is not None else "text", agents.this_attempt(tail))
    if reading.result is not None or reading.usage is not None or reading.session_id is not None:
        # (admission cleared result and usage; the session stays until a new one is reported)
        session = {"session_id": reading.session_id} if reading.session_id is not None else {}
        sup.store.update(proc.task_id, now, result=reading.result, reported_usage=reading.usage, **session)
    write_footer(sup, proc, now, status, reading.usage)
    return agents.verdict(
        reading,
        exited_ok=status == 0,
        timed_out=proc.ending in (Ending.TIMEOUT, Ending.STALL, Ending.REPORTED),
        rate_limit=agent.rate_limit if agent is not None else (),
        fatal=agent.fatal if agent is not None else (),
    )


_ENDED_BY = {
    Ending.TIMEOUT: "timed out",
    Ending.STALL: "stalled",
    Ending.REPORTED: "ended on an error it reported",
    Ending.CANCEL: "cancelled",
    Ending.STOP: "stopped with the supervisor",
}


def write_footer(
    sup: Supervisor, proc: Proc, now: float, status: int | None, usage: AgentUsage | None
) -> None:
    """The line that closes the attempt's part of the log: how it ended, how long it ran
    (from its admission), what its agent reported it used."""
    how = describe_status(status) if status is not None else "exit status unknown"
    if proc.ending is not None:
        how = f"{_ENDED_BY[proc.ending]}, {how}"
    seconds = now - proc.admitted_at if proc.admitted_at is not None else None
    runner.append_to_log(sup.home.log_path(proc.task_id), agents.attempt_footer(how, seconds, usage))


def describe_status(status: int) -> str:
    """An exit status as a task's reason says it: "exit code 3", "killed by SIGKILL"."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    if status > 128:
        try:
            return f"exit code {status} ({signal.Signals(status - 128).name}?)"
        except ValueError:
            pass
    return f"exit code {status}"


def check_running(sup: Supervisor, now: float, cpu: dict[int, float | None]) -> None:
    """After a usage sample, for each running attempt: end it if its agent reported a rate
    limit or a fatal error in its JSON output (rather than retrying it silently until the
    timeout); flag it as stalled after its agent's stall_after with no new output and no
    CPU (a task_stalled event, the reason on the running task), ended where on_stall =
    "fail"; clear the flag of one that came back to life."""
    for proc in list(sup.procs.values()):
        agent = sup.config.agents.get(proc.agent)
        if proc.exited or proc.ending is not None or agent is None:
            continue
        log = sup.home.log_path(proc.task_id)
        try:
            size = log.stat().st_size
        except OSError:
            size = 0
        before = sup.activity.get(proc.task_id)
        if agent.output != "text" and size and (before is None or size != before.log_size):
            reading = agents.read_log(agent.output, agents.this_attempt(runner.log_tail(log, READ_LOG)))
            if agents.reported_trouble(reading, rate_limit=agent.rate_limit, fatal=agent.fatal):
                end(sup, proc, Ending.REPORTED, now)
                continue
        if agent.stall_after is None:
            sup.activity[proc.task_id] = agents.Activity(size, now)
            continue
        activity, change = agents.stall_check(
            before, log_size=size, cpu_percent=cpu.get(proc.task_id), now=now, stall_after=agent.stall_after
        )
        sup.activity[proc.task_id] = activity
        if change is True:
            why = stalled_reason(sup, proc)
            sup.store.update(proc.task_id, now, reason=why)
            sup.store.record(
                now, EventType.TASK_STALLED, proc.task_id, {"reason": why, "on_stall": agent.on_stall}
            )
            if agent.on_stall == "fail":
                end(sup, proc, Ending.STALL, now)
        elif change is False:
            sup.store.update(proc.task_id, now, reason=None)


def stalled_reason(sup: Supervisor, proc: Proc) -> str:
    agent = sup.config.agents.get(proc.agent)
    after = format_duration(agent.stall_after) if agent is not None and agent.stall_after else "?"
    return f"stalled: no new output and under 1% CPU for {after}"
