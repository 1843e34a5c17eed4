"""The actions a person or a script takes on the queue: the one implementation behind both
the CLI's subcommands and the dashboard's keys.

A change that touches only the store (hold, release, requeue, cancelling a queued task)
is made here, in one transaction. A change that touches a process (pause, resume,
cancelling a live task, a new cap) becomes a request row for the supervisor, which is
then poked with SIGUSR1; nothing here ever signals an agent. Every id is checked before
anything changes, so a bad id leaves the queue exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kugetsu_tui.engine.config import save_setting
from kugetsu_tui.engine.config.kinds import PRIORITY
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.messages import ActionResult, RequestAction
from kugetsu_tui.engine.model import (
    LIVE_STATES,
    REQUEUEABLE_STATES,
    SETTLED_STATES,
    EventType,
    NewTask,
    Review,
    State,
    Task,
    requeue_changes,
)
from kugetsu_tui.engine.store import Store
from kugetsu_tui.errors import UsageError

if TYPE_CHECKING:
    from kugetsu_tui.engine.discard import Removal

UNSETTLED = frozenset({State.QUEUED, *LIVE_STATES})


class Control:
    def __init__(
        self,
        home: Home,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.home = home
        self.store = store
        self.clock = clock
        self.wake = wake  # set when the supervisor runs in this very process

    def supervisor_pid(self) -> int | None:
        return self.home.supervisor_pid()

    def poke(self) -> None:
        """Tell a running supervisor to look at the store now rather than at its next poll."""
        if self.wake is not None:
            self.wake()
            return
        pid = self.supervisor_pid()
        if pid and pid > 0 and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGUSR1)

    # --- checks ---------------------------------------------------------------------

    def find(
        self,
        ids: Sequence[int],
        allowed: Collection[State],
        what: str,
        test: Callable[[Task], bool] | None = None,
    ) -> list[Task]:
        """The tasks named by ids, or UsageError for the first one that cannot take `what`."""
        tasks = []
        for task_id in ids:
            task = self.store.get(task_id)
            if task is None:
                raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
            if task.state not in allowed or (test is not None and not test(task)):
                states = " or ".join(sorted(str(s) for s in allowed))
                detail = f"{task.state}{', held' if task.held else ''}"
                raise UsageError(f"task {task_id} is {detail}; only {states} tasks can be {what}")
            tasks.append(task)
        return tasks

    # --- actions --------------------------------------------------------------------

    def add(
        self,
        new_tasks: Sequence[NewTask],
        *,
        max_queued: int | None = None,
        refuse_at_cap: int | None = None,
    ) -> list[int]:
        """Queue new tasks (all or none). Raises AddRefused, queuing nothing, beyond
        `max_queued` ([queue] max_queued) or, with `refuse_at_cap`, when that many are live."""
        ids = self.store.add(new_tasks, self.clock(), max_queued=max_queued, refuse_at_cap=refuse_at_cap)
        self.poke()
        return ids

    def cancel(self, ids: Sequence[int], *, children: bool = False) -> list[ActionResult]:
        """End live tasks or drop queued ones; with children, also every task they added
        (their children, theirs, and so on) that is still queued or live."""
        tasks = self.find(ids, {State.QUEUED, *LIVE_STATES}, "cancelled")
        if children:
            named = {t.id for t in tasks}
            kids = dict.fromkeys(k for t in tasks for k in self.descendants(t.id) if k not in named)
            tasks += [k for k in map(self.store.get, kids) if k is not None]
        outcomes = []
        for task in tasks:
            if task.state is State.QUEUED and self.store.cancel_queued(task.id, self.clock()):
                outcomes.append(ActionResult(True, "cancelled", task.id))
                continue
            # Live (or admitted a moment ago): only the supervisor may end its processes.
            outcomes.append(self._request(RequestAction.CANCEL, task.id, None, "cancel"))
        self.poke()
        return outcomes

    def descendants(self, task_id: int, states: Collection[State] = UNSETTLED) -> list[int]:
        """The tasks task_id added (from inside its run), theirs and so on, in one of
        `states` (default: queued or live), nearest first."""
        found: list[int] = []
        level, seen = [task_id], {task_id}
        while level:
            below = [c for kids in self.store.children(level).values() for c in kids if c not in seen]
            seen.update(below)
            found += [c for c in below if (t := self.store.get(c)) is not None and t.state in states]
            level = below
        return found

    def terminal_task(self, task_id: int) -> Task:
        """The task if it has a live terminal (to attach to, or type into), else UsageError."""
        from kugetsu_tui.engine import terminal

        task = self.store.get(task_id)
        if task is None:
            raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
        if not task.is_live or not terminal.is_live(self.home.root, task_id):
            raise UsageError(
                f"task {task_id} ({task.state}) has no live terminal "
                "(expected a running task of an agent with terminal = true)"
            )
        return task

    def send(self, task_id: int, text: str, *, by: str = "person") -> ActionResult:
        """Type a line (then Enter) into a live terminal task, clearing its needs-input
        flag with a task_input_given event. The text is typed, never recorded."""
        from kugetsu_tui.engine import terminal

        self.terminal_task(task_id)
        if not terminal.send(self.home.root, task_id, text):
            raise UsageError(f"task {task_id}: its terminal ended before the text could be sent")
        self.store.give_input(task_id, self.clock(), by, via="send")
        return ActionResult(True, "sent", task_id)

    def pause(self, ids: Sequence[int]) -> list[ActionResult]:
        tasks = self.find(ids, {State.RUNNING}, "paused")
        outcomes = [self._request(RequestAction.PAUSE, t.id, None, "pause") for t in tasks]
        self.poke()
        return outcomes

    def resume(self, ids: Sequence[int]) -> list[ActionResult]:
        tasks = self.find(ids, {State.PAUSED}, "resumed")
        outcomes = [self._request(RequestAction.RESUME, t.id, None, "resume") for t in tasks]
        self.poke()
        return outcomes

    def hold(self, ids: Sequence[int]) -> list[ActionResult]:
        tasks = self.find(ids, {State.QUEUED}, "held", lambda t: not t.held)
        return [self._set_held(t, True) for t in tasks]

    def release(self, ids: Sequence[int]) -> list[ActionResult]:
        tasks = self.find(ids, {State.QUEUED}, "released (held ones)", lambda t: t.held)
        outcomes = [self._set_held(t, False) for t in tasks]
        self.poke()
        return outcomes

    def requeue(
        self, ids: Sequence[int], note: str | None = None, *, prompt: str | None = None
    ) -> list[ActionResult]:
        """Queue settled tasks again with fresh attempts. A note is appended to the prompt,
        so the next attempt does not start blind ("the tests still fail"); one that continues
        the agent's session (its last attempt was cut short) is given the note alone. An
        edited `prompt` replaces the task's (model.requeue_changes)."""
        if prompt is not None and not prompt.strip():
            raise UsageError('empty prompt (expected the task\'s text, e.g. "fix the flaky test")')
        tasks = self.find(ids, REQUEUEABLE_STATES, "requeued")
        outcomes = []
        for task in tasks:
            now = self.clock()
            changes = requeue_changes(task.prompt, prompt, note)
            done = self.store.transition(
                task.id,
                State.QUEUED,
                now=now,
                event=EventType.TASK_REQUEUED,
                expect=REQUEUEABLE_STATES,
                attempts=0,
                not_before=None,
                queued_at=now,
                exit_code=None,
                reason=None,
                started_at=None,
                ended_at=None,
                held=False,
                cancel_requested_at=None,
                **changes,
            )
            message = "requeued" if done else "changed meanwhile; not requeued"
            outcomes.append(ActionResult(done is not None, message, task.id))
        self.poke()
        return outcomes

    def set_priority(self, ids: Sequence[int], priority: int) -> list[ActionResult]:
        """Give queued tasks a new priority (higher runs first), as `add --priority` takes it."""
        if isinstance(priority, bool) or not PRIORITY.lo <= priority <= PRIORITY.hi:
            raise UsageError(f"priority: expected {PRIORITY.expected}, got {priority!r}")
        tasks = self.find(ids, {State.QUEUED}, "given a priority")
        outcomes = []
        for task in tasks:
            done = self.store.transition(
                task.id,
                State.QUEUED,
                now=self.clock(),
                expect={State.QUEUED},
                event=EventType.TASK_PRIORITY_SET,
                extra={"was": task.priority},
                priority=priority,
            )
            message = f"priority {priority}" if done else "changed meanwhile; priority not set"
            outcomes.append(ActionResult(done is not None, message, task.id))
        self.poke()
        return outcomes

    def set_cap(self, cap: int) -> ActionResult:
        """Write the cap to config.toml and have the supervisor use it (lowering never kills)."""
        if cap < 1:
            raise UsageError(f"cap must be a whole number >= 1, got {cap}")
        save_setting(self.home.config_path, "capacity", "cap", cap)
        if self.supervisor_pid() is None:
            self.store.record(self.clock(), EventType.CAP_CHANGED, None, {"cap": cap})
            return ActionResult(True, f"cap {cap}")
        outcome = self._request(RequestAction.CAP, None, str(cap), f"cap {cap}")
        self.poke()
        return outcome

    def _set_held(self, task: Task, held: bool) -> ActionResult:
        now = self.clock()
        # Held tasks never expire; a released one starts its wait afresh rather than
        # expiring on the spot for the time it spent parked.
        changes: dict[str, Any] = {"held": held} if held else {"held": held, "queued_at": now}
        done = self.store.transition(
            task.id,
            State.QUEUED,
            now=now,
            expect={State.QUEUED},
            event=EventType.TASK_HELD if held else EventType.TASK_RELEASED,
            **changes,
        )
        verb = "held" if held else "released"
        return ActionResult(done is not None, verb if done else f"changed meanwhile; not {verb}", task.id)

    def _request(
        self, action: RequestAction, task_id: int | None, arg: str | None, verb: str
    ) -> ActionResult:
        request_id = self.store.add_request(action, task_id, arg, self.clock())
        return ActionResult(True, f"{verb} requested", task_id, request_id)

    def wait_for(self, outcome: ActionResult, timeout: float = 5.0) -> ActionResult:
        """Block until the supervisor has carried out outcome's request (CLI only)."""
        if outcome.request_id is None:
            return outcome
        if self.supervisor_pid() is None:
            return ActionResult(
                True,
                f"{outcome.message}; no supervisor is running, it will be carried "
                "out when one starts (kugetsu run)",
                outcome.task_id,
                outcome.request_id,
            )
        deadline = time.monotonic() + timeout
        delay = 0.005
        while time.monotonic() < deadline:
            answer = self.store.request_result(outcome.request_id)
            if answer is not None:
                result = ActionResult.decode(answer, outcome.task_id, outcome.request_id)
                if not result.ok:
                    raise UsageError(result.message)
                return result
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return ActionResult(
            True,
            f"{outcome.message}; the supervisor has not answered yet",
            outcome.task_id,
            outcome.request_id,
        )

    # --- review: what became of a settled task's work --------------------------------

    def diff(self, task_id: int, *, stat: bool = False) -> str:
        """What the task changed against where it started, new files included (a unified
        diff, or git's --stat); see review.diff. ReviewError when git failed."""
        from kugetsu_tui.engine import review

        task = self.store.get(task_id)
        if task is None:
            raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
        return review.diff(task, stat=stat)

    def merge(
        self, task_id: int, *, into: str | None = None, strategy: str = "merge", keep: bool = False
    ) -> ActionResult:
        """Land a settled task's branch on its base (or `into`); see merge.merge. A conflict
        or a failed git step is a result that is not ok (nothing was changed)."""
        from kugetsu_tui.engine import merge, review

        (task,) = self.find([task_id], SETTLED_STATES, "merged")
        try:
            how = merge.Strategy(strategy)
        except ValueError:
            raise UsageError(f"strategy {strategy!r}: expected merge, squash or rebase") from None
        try:
            merged = merge.merge(task, into=into, strategy=how, keep=keep, scratch=self.home.worktrees)
        except review.ReviewError as err:
            return ActionResult(False, f"{err}", task.id)
        changes: dict[str, Any] = {"review": str(Review.MERGED)}
        if not keep and merged.kept is None:
            changes |= {"worktree": None, "branch": None}
        data = {
            "into": merged.target,
            "strategy": str(how),
            "commit": merged.commit,
            "removed": merged.removed,
        }
        self._reviewed(task, EventType.TASK_MERGED, data, changes)
        where = f" (checked out in {merged.checked_out})" if merged.checked_out else ""
        message = (
            f"already in {merged.target}{where}"
            if merged.already
            else f"merged into {merged.target}{where} ({how}, {merged.commit[:12]})"
        )
        if merged.removed:
            message += f"; removed its {' and '.join(merged.removed)}"
        if merged.kept:
            message += f"; its worktree stays ({merged.kept.removeprefix('kept: ')}): kugetsu gc removes it"
        return ActionResult(True, message, task.id)

    def discard(self, ids: Sequence[int]) -> list[ActionResult]:
        """Remove settled tasks' worktrees and branches, whatever is in them."""
        from kugetsu_tui.engine import discard

        tasks = self.find(ids, SETTLED_STATES, "discarded")
        for task in tasks:
            if task.review == Review.MERGED:
                raise UsageError(f"task {task.id} is merged; `kugetsu gc` removes what is left of it")
        outcomes = []
        for task in tasks:
            removal = discard.remove_work(task, force=True)
            if removal.kept is not None:
                outcomes.append(ActionResult(False, removal.kept.removeprefix("kept: "), task.id))
                continue
            changes = {"review": str(Review.DISCARDED), "worktree": None, "branch": None}
            data = {"removed": removal.removed, "branch_commit": removal.commit}
            self._reviewed(task, EventType.TASK_DISCARDED, data, changes)
            removed = removal.removed
            said = f"removed its {' and '.join(removed)}" if removed else "nothing of it was left"
            outcomes.append(ActionResult(True, f"discarded: {said}", task.id))
        self.poke()
        return outcomes

    def gc(self, older_than: float = 0.0) -> list[ActionResult]:
        """Remove what is left (worktrees, branches) of merged, discarded and empty tasks
        that settled at least `older_than` seconds ago. One result per task cleaned, and an
        event per thing removed (worktree_removed, branch_removed) for `events` and hooks."""
        from kugetsu_tui.engine import discard

        cutoff = self.clock() - older_than
        outcomes = []
        for task in self.store.tasks(SETTLED_STATES):
            if not (task.worktree or task.branch) or task.no_worktree or (task.ended_at or 0) > cutoff:
                continue
            reviewed = task.review in (Review.MERGED, Review.DISCARDED)
            if not reviewed and not discard.is_empty(task):
                continue
            removal = discard.remove_work(task, force=reviewed)
            if removal.kept is not None:
                outcomes.append(ActionResult(False, removal.kept.removeprefix("kept: "), task.id))
                continue
            why = str(task.review) if reviewed else "empty"
            self._collected(task.id, removal, why)
            if removal.removed:
                outcomes.append(
                    ActionResult(True, f"removed its {' and '.join(removal.removed)} ({why})", task.id)
                )
        if any(outcome.ok for outcome in outcomes):
            self.poke()  # a running supervisor hands the events to the hooks
        return outcomes

    def _collected(self, task_id: int, removal: Removal, why: str) -> None:
        """Record what gc removed of a task: its columns, and an event per thing removed, at once."""
        now = self.clock()
        with self.store.batch():
            self.store.update(task_id, now, worktree=None, branch=None)
            if removal.worktree:
                gone = {"worktree": removal.worktree, "why": why}
                self.store.record(now, EventType.WORKTREE_REMOVED, task_id, gone)
            if removal.branch:
                deleted = {"branch": removal.branch, "commit": removal.commit, "why": why}
                self.store.record(now, EventType.BRANCH_REMOVED, task_id, deleted)

    def _reviewed(self, task: Task, event: EventType, data: dict[str, Any], changes: dict[str, Any]) -> None:
        """Record what a person did with a task's work: its columns and event, at once."""
        self.store.transition(
            task.id, task.state, now=self.clock(), event=event, expect={task.state}, extra=data, **changes
        )
        self.poke()  # a running supervisor hands the event to the hooks

    # --- stepping into a task: its terminal, its worktree --------------------------------

    def attach_argv(self, task_id: int) -> list[str]:
        """The command that attaches a terminal to a live terminal task's session, or
        UsageError; attaching answers its needs-input flag, so that is cleared."""
        from kugetsu_tui.engine import terminal

        self.terminal_task(task_id)
        self.store.set_needs_input(task_id, None, self.clock(), by="person")
        return terminal.attach_argv(self.home.root, task_id)

    def work_dir(self, task_id: int) -> Path:
        """The folder a task's work is in (its worktree, or its repo when it ran without
        one), or UsageError when nothing of it is left."""
        task = self.store.get(task_id)
        if task is None:
            raise UsageError(f"no task {task_id} (expected an id listed by `kugetsu status`)")
        where = task.worktree or (task.repo if task.no_worktree else None)
        if where is None or not Path(where).is_dir():
            raise UsageError(
                f"task {task_id} has no worktree left (removed when it was clean, merged or "
                "discarded); expected a task with a worktree (`kugetsu status` shows [kept PATH])"
            )
        return Path(where)
