"""The Done view (`v`) and the diff screen (`d`): what finished agents changed, merged (`m`)
or discarded (`x`) from the dashboard, each after a question that names the task.

Tasks here end the way the supervisor ends them: a real worktree made by the engine, files
written in it, the task settled as succeeded, then `review.settle_worktree` commits the
work and measures it, and the store records that. Git runs with fixed dates and names, so
commits (and the snapshots) are the same every time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from kugetsu_tui.engine import review, worktree
from kugetsu_tui.engine.config import Config
from kugetsu_tui.engine.home import Home
from kugetsu_tui.engine.model import EventType, NewTask, State
from kugetsu_tui.engine.store import Store
from kugetsu_tui.tui.app import KugetsuApp
from kugetsu_tui.tui.board import SupervisorState
from kugetsu_tui.tui.screens.confirm import ConfirmScreen
from kugetsu_tui.tui.screens.diff import DiffScreen
from kugetsu_tui.tui.screens.done import PAGE, DoneScreen
from tests.helpers.tui import T0, fixed_machine, screen_lines, wait_for, write_config

SIZE = (120, 35)
OK = "cancelled or expired or failed or succeeded"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@localhost",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@localhost",
    "GIT_AUTHOR_DATE": "2023-11-14T22:00:00Z",
    "GIT_COMMITTER_DATE": "2023-11-14T22:00:00Z",
}


@pytest.fixture(autouse=True)
def fixed_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


class Work:
    """A home and a repo whose tasks finish with real worktrees and branches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        self.repo.mkdir(parents=True)
        (self.repo / "README.md").write_text("# demo\n\nA small project.\n")
        (self.repo / "parser.py").write_text("def parse(text):\n    return text.split()\n")
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-q", "-m", "start")
        self.home = Home(root / "home").ensure()
        self.config: Config = write_config(self.home)
        self.store = Store(self.home.db_path)

    def finished(self, prompt: str, files: dict[str, str], ended: float) -> int:
        """A task that ran in its own worktree, wrote `files` and succeeded at `ended`."""
        (task_id,) = self.store.add(
            [NewTask(prompt=prompt, agent="sleeper", repo=str(self.repo))], ended - 60
        )
        where = self.home.worktree_path(task_id)
        branch = worktree.ensure(self.repo, where, f"kugetsu/{task_id}", owner="test")
        for name, text in files.items():
            (where / name).write_text(text)
        self.store.transition(
            task_id,
            State.STARTING,
            now=ended - 50,
            event=EventType.TASK_DEQUEUED,
            attempts=1,
            started_at=ended - 50,
        )
        self.store.update(task_id, ended - 50, worktree=str(where), branch=branch)
        self.store.transition(task_id, State.RUNNING, now=ended - 49, event=EventType.TASK_STARTED)
        task = self.store.transition(
            task_id, State.SUCCEEDED, now=ended, event=EventType.TASK_COMPLETED, ended_at=ended, exit_code=0
        )
        assert task is not None
        settled = review.settle_worktree(task, commit=True)
        self.store.update(task_id, ended, **settled.columns(task))
        return task_id

    def app(self) -> KugetsuApp:
        return KugetsuApp(
            self.home,
            self.config,
            clock=lambda: T0,
            machine_sampler=fixed_machine,
            probe=lambda: SupervisorState(),
            sample_every=None,
            refresh_every=0.1,
        )


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Work]:
    made = Work(tmp_path)
    yield made
    made.store.close()


def three_tasks(work: Work) -> tuple[int, int, int]:
    fixed = work.finished(
        "fix the parser's split on tabs",
        {"parser.py": "def parse(text):\n    return text.split('\\t')\n", "NOTES.md": "tabs now\n"},
        T0 - 900,
    )
    empty = work.finished("look for dead code (found none)", {}, T0 - 600)
    docs = work.finished("document the parser", {"README.md": "# demo\n\nA small parser.\n"}, T0 - 300)
    return fixed, empty, docs


async def open_done(pilot: Pilot[Any], app: KugetsuApp) -> DoneScreen:
    await pilot.press("v")
    await wait_for(pilot, lambda: isinstance(app.screen, DoneScreen), "the Done view")
    screen = app.screen
    assert isinstance(screen, DoneScreen)
    return screen


async def test_done_view_lists_succeeded_tasks_latest_first_with_their_work(work: Work) -> None:
    fixed, empty, docs = three_tasks(work)
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_done(pilot, app)
        assert screen.ids == [docs, empty, fixed]
        lines = "\n".join(screen_lines(app))
        assert "Done ✓ 3 · the latest first" in lines
        rows = {task_id: " ".join(line.split()) for task_id in screen.ids for line in screen_lines(app)
                if line.split()[:1] == [str(task_id)]}  # fmt: skip
        # (The picture's text runs drop some spaces: compare without them.)
        assert "+1−11unreviewed" in rows[docs].replace(" ", "")
        assert "nochanges0unreviewed" in rows[empty].replace(" ", "")
        assert "+2−12unreviewed" in rows[fixed].replace(" ", "")
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_diff_screen_shows_files_and_n_p_move_between_them(work: Work) -> None:
    fixed, _, _ = three_tasks(work)
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_done(pilot, app)
        await pilot.press("down", "down")  # the oldest: the task with two files
        assert screen.selected_task_id == fixed
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), "the diff screen")
        diff = app.screen
        assert isinstance(diff, DiffScreen)
        assert [f.path for f in diff.files] == ["NOTES.md", "parser.py"]
        assert diff.query_one(OptionList).option_count == 2
        shown = "\n".join(screen_lines(app))
        assert f"Task {fixed} · kugetsu/{fixed} against main at" in shown and "2 files +2 −1" in shown
        assert "+tabs now" in shown
        await pilot.press("n")
        await pilot.pause()
        shown = "\n".join(screen_lines(app))
        assert diff.current == 1 and "+    return text.split('\\t')" in shown and "+tabs now" not in shown
        await pilot.press("p")
        await pilot.pause()
        assert diff.current == 0
        await pilot.press("escape")
        assert app.screen is screen


async def test_merge_from_the_diff_asks_with_task_target_and_strategy(work: Work) -> None:
    _, _, docs = three_tasks(work)
    main = git(work.repo, "rev-parse", "main").strip()
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        await open_done(pilot, app)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), "the diff screen")
        await pilot.press("m")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == f"Merge task {docs} into main?"
        assert f"Strategy: merge (a merge commit of kugetsu/{docs} on main)" in confirm.detail
        await pilot.press("n")
        assert isinstance(app.screen, DiffScreen) and git(work.repo, "rev-parse", "main").strip() == main
        await pilot.press("m", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, DoneScreen), "back on the Done view")
        assert (work.repo / "README.md").read_text() == "# demo\n\nA small parser.\n"
        task = work.store.get(docs)
        assert task is not None and (task.review, task.branch) == ("merged", None)
        await wait_for(pilot, lambda: "merged" in "\n".join(screen_lines(app)), "the row to say merged")


async def test_discard_asks_naming_the_task_and_n_changes_nothing(work: Work) -> None:
    fixed, _, _ = three_tasks(work)
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_done(pilot, app)
        await pilot.press("down", "down", "x")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen) and confirm.question == f"Discard task {fixed}?"
        assert f"branch kugetsu/{fixed}" in confirm.detail
        await pilot.press("n")
        assert f"kugetsu/{fixed}" in git(work.repo, "branch", "--list", f"kugetsu/{fixed}")
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: app.screen is screen, "back on the Done view")
        assert git(work.repo, "branch", "--list", f"kugetsu/{fixed}") == ""
        task = work.store.get(fixed)
        assert task is not None and task.review == "discarded"
        await wait_for(pilot, lambda: "discarded" in "\n".join(screen_lines(app)), "the row to say discarded")


async def test_marked_tasks_in_the_done_view_merge_after_one_question(work: Work) -> None:
    fixed, empty, docs = three_tasks(work)
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_done(pilot, app)
        await pilot.press("space", "down", "space")  # docs (the latest) and fixed; not empty
        assert screen.marked == {docs, fixed}
        assert str(screen.table.get_row_at(0)[0]) == f"●{docs}"
        await pilot.press("m")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == "Merge 2 marked tasks?"
        assert confirm.detail.startswith(f"Tasks {fixed}, {docs}.")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is screen, "back on the Done view")
        for task_id in (fixed, docs):
            task = work.store.get(task_id)
            assert task is not None and task.review == "merged", task_id
        assert (work.repo / "README.md").read_text() == "# demo\n\nA small parser.\n"
        assert (work.repo / "NOTES.md").read_text() == "tabs now\n"
        assert not screen.marked
        task = work.store.get(empty)
        assert task is not None and task.review != "merged"


async def test_escape_in_the_done_view_drops_marks_before_going_back(work: Work) -> None:
    three_tasks(work)
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_done(pilot, app)
        await pilot.press("space")
        assert screen.marked
        await pilot.press("escape")
        assert app.screen is screen and not screen.marked
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_done_view_reads_the_next_page_when_the_cursor_gets_there(work: Work) -> None:
    now = T0 - 5000
    new = [
        NewTask(prompt=f"task {n}", agent="sleeper", repo=str(work.repo), no_worktree=True)
        for n in range(PAGE + 5)
    ]
    ids = work.store.add(new, now)
    with work.store.batch():
        for n, task_id in enumerate(ids):
            work.store.transition(task_id, State.STARTING, now=now, event=EventType.TASK_DEQUEUED)
            work.store.transition(
                task_id, State.SUCCEEDED, now=now, event=EventType.TASK_COMPLETED, ended_at=now + n
            )
    app = work.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_done(pilot, app)
        assert len(screen.ids) == PAGE and screen.ids[0] == ids[-1]
        assert f"Done ✓ {PAGE + 5} · {PAGE} shown" in "\n".join(screen_lines(app))
        for _ in range(PAGE // 10):
            await pilot.press("pagedown")
        await wait_for(pilot, lambda: len(screen.ids) == PAGE + 5, "the next page")
        assert screen.ids[-1] == ids[0]


# --- how they look --------------------------------------------------------------------------


def snapshot_work(root: Path) -> Work:
    # No path shows on these screens, so a folder of the test's own (not the shared fixed
    # one); fixed_git has set git's dates and names, so the commits are the same anyway.
    work = Work(root)
    three_tasks(work)
    work.store.close()
    return work


async def on_screen(pilot: Pilot[Any], *keys: str) -> None:
    """Press keys one at a time, each once the screen it is meant for is up and quiet."""
    app = pilot.app
    for key in keys:
        screen = app.screen
        await pilot.press(key)
        if key in ("v", "d", "m"):
            await wait_for(pilot, lambda s=screen: app.screen is not s, f"the screen opened by {key}")
        await pilot.pause()


def test_done_view_snapshot(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(
        snapshot_work(tmp_path).app(), terminal_size=SIZE, run_before=lambda p: on_screen(p, "v")
    )


def test_diff_screen_snapshot(snap_compare: Any, tmp_path: Path) -> None:
    keys = ("v", "down", "down", "d")
    assert snap_compare(
        snapshot_work(tmp_path).app(), terminal_size=SIZE, run_before=lambda p: on_screen(p, *keys)
    )


def test_merge_confirm_snapshot(snap_compare: Any, tmp_path: Path) -> None:
    keys = ("v", "d", "m")
    assert snap_compare(
        snapshot_work(tmp_path).app(), terminal_size=SIZE, run_before=lambda p: on_screen(p, *keys)
    )
