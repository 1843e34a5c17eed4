"""One intake for every face: the rules a new task must meet, with a real store and config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Input, Label, Select

from kugetsu_tui.engine.config import load_config
from kugetsu_tui.engine.intake import Intake
from kugetsu_tui.engine.model import NewTask
from kugetsu_tui.engine.store import Store
from kugetsu_tui.errors import UsageError
from kugetsu_tui.tui.screens.new_task import NewTaskScreen
from tests.helpers.harness import make_repo

CONFIG = """
default_agent = "fake"
[queue]
max_attempts = 4
[agents.fake]
command = ["true", "{prompt}"]
[agents.reader]
command = ["cat"]
prompt_via = "stdin"
[agents.sneaky]
command = ["{prompt}", "--flag"]
[agents.sneaky_stdin]
command = ["{prompt}.sh"]
prompt_via = "stdin"
"""


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    (tmp_path / "config.toml").write_text(CONFIG)
    store = Store(tmp_path / "state.db")
    try:
        yield Intake(load_config(tmp_path / "config.toml"), store, cwd=lambda: str(tmp_path))
    finally:
        store.close()


def refused(intake: Intake, spec: dict[str, object], **kw: object) -> str:
    with pytest.raises(UsageError) as err:
        intake.task(spec, **kw)  # type: ignore[arg-type]
    return str(err.value)


def test_defaults_come_from_the_config_and_the_folder(intake: Intake, tmp_path: Path) -> None:
    task = intake.task({"prompt": "fix it", "no_worktree": True})
    assert task == NewTask(
        prompt="fix it", agent="fake", repo=str(tmp_path), no_worktree=True, max_attempts=4
    )


def test_without_no_worktree_the_repo_must_be_a_git_repo(intake: Intake, tmp_path: Path) -> None:
    assert "is not inside a git repository" in refused(intake, {"prompt": "x"})
    repo = make_repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    assert intake.task({"prompt": "x", "repo": str(repo / "sub")}).repo == str(repo)


def test_the_same_folder_with_and_without_a_worktree_is_judged_each_way(intake: Intake) -> None:
    """A folder accepted for --no-worktree is not thereby accepted as a git repo."""
    assert intake.task({"prompt": "x", "no_worktree": True}).repo
    assert "is not inside a git repository" in refused(intake, {"prompt": "x"})


@pytest.mark.parametrize("agent", ["sneaky", "sneaky_stdin"])
def test_an_agent_whose_program_is_the_prompt_is_refused(intake: Intake, agent: str) -> None:
    message = refused(intake, {"prompt": "rm -rf ~", "agent": agent, "no_worktree": True})
    assert f"[agents.{agent}] command" in message and "would run the prompt as a program" in message


def test_the_form_gives_numbers_as_text(intake: Intake) -> None:
    spec = {"prompt": "x", "no_worktree": True, "priority": " 7 ", "max_attempts": "2"}
    task = intake.task(spec, typed=False)
    assert (task.priority, task.max_attempts) == (7, 2)
    assert (
        refused(intake, {**spec, "priority": "high"}, typed=False)
        == "priority: expected a whole number from -1000000 to 1000000, got 'high'"
    )
    # From JSON a number in quotes stays a mistake.
    assert refused(intake, spec) == "priority: expected a whole number from -1000000 to 1000000, got ' 7 '"


def test_after_names_tasks_that_exist(intake: Intake) -> None:
    (first,) = intake.store.add([intake.task({"prompt": "a", "no_worktree": True})], 1.0)
    task = intake.task({"prompt": "b", "no_worktree": True, "after": f"{first}, "})
    assert task.after == (first,)
    assert "after: no task 99" in refused(intake, {"prompt": "b", "no_worktree": True, "after": [99]})
    assert "after: expected task ids" in refused(
        intake, {"prompt": "b", "no_worktree": True, "after": [True]}
    )


def test_json_lines_name_the_line_of_the_first_mistake(intake: Intake) -> None:
    good = '{"prompt": "x", "no_worktree": true}'
    assert len(intake.json_lines(f"{good}\n\n{good}\n", "t.jsonl")) == 2
    with pytest.raises(
        UsageError, match=r"^t.jsonl:3: max_attempts: expected a whole number from 1 to 1000, got 0$"
    ):
        intake.json_lines(f'{good}\n\n{{"prompt": "y", "no_worktree": true, "max_attempts": 0}}\n', "t.jsonl")
    with pytest.raises(UsageError, match=r"^t.jsonl:1: unknown key 'colour'"):
        intake.json_lines('{"prompt": "x", "colour": 1}', "t.jsonl")
    with pytest.raises(UsageError, match="no tasks in it"):
        intake.json_lines("\n \n", "t.jsonl")


class FormHost(App[None]):
    """Just the new-task form over an empty screen, with what it returns."""

    def __init__(self, intake: Intake) -> None:
        super().__init__()
        self.intake = intake
        self.result: list[object] = []

    def on_mount(self) -> None:
        screen = NewTaskScreen(
            agents=sorted(self.intake.config.agents), agent="sneaky", repo="", intake=self.intake
        )
        self.push_screen(screen, self.result.append)


async def test_the_dashboard_form_is_checked_by_the_same_intake(intake: Intake, tmp_path: Path) -> None:
    app = FormHost(intake)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(app.screen, NewTaskScreen)
        await pilot.press(*"rm -rf ~", "enter")
        await pilot.pause()
        shown = str(app.screen.query_one("#form-error", Label).render())
        assert "[agents.sneaky] command" in shown and "would run the prompt as a program" in shown
        assert app.result == []
        app.screen.query_one("#agent", Select).value = "fake"
        app.screen.query_one("#repo", Input).value = str(make_repo(tmp_path / "repo"))
        app.screen.query_one("#priority", Input).value = "-2"
        await pilot.press("enter")
        await pilot.pause()
    (task,) = app.result
    assert task == NewTask(
        prompt="rm -rf ~", agent="fake", repo=str(tmp_path / "repo"), priority=-2, max_attempts=4
    )
