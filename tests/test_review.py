"""Reviewing what agents did: a success's work committed on its branch, its base and changes
recorded, then diff, merge (into a checked-out clean branch, into one not checked out,
refused on a dirty checkout, conflicts that change nothing, squash, rebase), discard, gc
and shell — through the real CLI, real supervisors and real git repos and worktrees."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from kugetsu_tui.engine.config.keys import MERGE_STRATEGIES
from kugetsu_tui.engine.merge import Strategy
from kugetsu_tui.engine.store import Store
from tests.helpers.harness import Kugetsu, git, script, wait_until


def _branches(repo: Path) -> set[str]:
    return set(git(repo, "branch", "--format=%(refname:short)").split())


def _worktrees(repo: Path) -> list[str]:
    return [
        line.removeprefix("worktree ")
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def _sha(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref).strip()


def _run(kg: Kugetsu, repo: Path, *prompts: str, ok: bool = True) -> list[int]:
    ids = [kg.add(prompt, "--repo", str(repo), "--max-attempts", "1") for prompt in prompts]
    result = kg.run()
    assert result.returncode == (0 if ok else 1), result.stdout + result.stderr
    return ids


def _writes(*files: tuple[str, str], commit: str | None = None) -> str:
    steps: list[list[object]] = [["write", name, text] for name, text in files]
    if commit:
        steps.append(["git-commit", commit])
    return script(*steps)


def test_a_success_is_committed_on_its_branch_with_its_base_and_changes(kg: Kugetsu, repo: Path) -> None:
    head = _sha(repo)
    # The prompt's first line carries an escape sequence: the commit's subject must not.
    first = script(["write", "a.txt", "one two"], ["write", "README.md", "changed"]) + ' ; say "\x1b[31mred"'
    (task_id,) = _run(kg, repo, first + "\n; ok")

    task = kg.task(task_id)
    branch = f"kugetsu/{task_id}"
    assert task["branch"] == branch and task["worktree"] is None, "committed, so the worktree was clean"
    assert task["base"] == {"ref": None, "branch": "main", "commit": head}
    assert task["changes"] == {"files": 2, "insertions": 2, "deletions": 1, "commits": 1}
    assert task["review"] == "unreviewed"
    subject, body = git(repo, "log", "-1", "--format=%s%n%b", branch).split("\n", 1)
    assert subject == "write a.txt 'one two' ; write README.md changed ; say \"red\""
    assert body.strip() == f"kugetsu task {task_id}"
    assert git(repo, "rev-parse", f"{branch}~1").strip() == head
    assert _sha(repo) == head and git(repo, "status", "--porcelain") == "", "the person's checkout untouched"


def test_a_task_that_changed_nothing_leaves_no_branch(kg: Kugetsu, repo: Path) -> None:
    (task_id,) = _run(kg, repo, script(["ok"]))
    task = kg.task(task_id)
    assert task["state"] == "succeeded" and task["reason"] == "no changes"
    assert task["changes"] == {"files": 0, "insertions": 0, "deletions": 0, "commits": 0}
    assert task["branch"] is None and task["worktree"] is None
    assert f"kugetsu/{task_id}" not in _branches(repo)
    assert not (kg.home / "worktrees" / str(task_id)).exists()
    assert task["base"]["commit"] == _sha(repo)
    assert "  no changes" in kg.main("status")[1]


def test_setup_output_is_not_committed(kg: Kugetsu, repo: Path) -> None:
    """What `[worktree] setup` made is not the agent's work, even when git does not ignore it."""
    kg.write_config(worktree={"setup": ["sh", "-c", "echo dep > vendored.txt"]})
    (task_id,) = _run(kg, repo, _writes(("new.txt", "work\n")))
    assert git(repo, "show", "--name-only", "--format=", f"kugetsu/{task_id}").split() == ["new.txt"]
    assert kg.task(task_id)["worktree"] is None, "only setup's file was left: removed"


def test_commit_false_leaves_the_work_uncommitted(kg: Kugetsu, repo: Path) -> None:
    kg.write_config(worktree={"commit": False})
    (task_id,) = _run(kg, repo, _writes(("a.txt", "x")))
    task = kg.task(task_id)
    assert task["worktree"] is not None and (Path(task["worktree"]) / "a.txt").exists()
    assert task["changes"]["commits"] == 0 and f"kugetsu/{task_id}" in _branches(repo)
    code, _, err = kg.main("merge", str(task_id))
    assert code == 2 and "uncommitted work" in err and "1 untracked file" in err


def test_diff_shows_the_work_against_its_base_made_printable(kg: Kugetsu, repo: Path) -> None:
    (task_id,) = _run(kg, repo, _writes(("a.txt", "hello \x1b]0;owned\x07there\n")))
    code, out, err = kg.main("diff", str(task_id))
    assert code == 0, err
    assert "+++ b/a.txt" in out and "+hello there" in out and "\x1b" not in out
    code, out, _ = kg.main("diff", str(task_id), "--stat")
    assert code == 0 and "a.txt | 1 +" in out and "1 file changed" in out

    (empty,) = _run(kg, repo, script(["ok"]))
    assert kg.main("diff", str(empty)) == (0, "", f"kugetsu: task {empty}: no changes\n")


def test_merge_into_the_checked_out_clean_base(kg: Kugetsu, repo: Path) -> None:
    (task_id,) = _run(kg, repo, _writes(("a.txt", "from the agent\n")))
    before, tip = _sha(repo), _sha(repo, f"kugetsu/{task_id}")
    code, out, err = kg.main("merge", str(task_id))
    assert code == 0, err
    assert out.startswith(f"task {task_id}: merged into main (checked out in {repo})")
    assert f"kugetsu/{task_id}" in out, "it says what it removed"
    assert git(repo, "log", "-1", "--format=%P").split() == [before, tip], "a merge commit"
    assert (repo / "a.txt").read_text() == "from the agent\n", "the checkout itself moved"
    assert git(repo, "status", "--porcelain") == ""
    assert f"kugetsu/{task_id}" not in _branches(repo) and _worktrees(repo) == [str(repo)]
    task = kg.task(task_id)
    assert (task["review"], task["branch"], task["worktree"]) == ("merged", None, None)
    assert "  +1 −0 in 1 file, merged" in kg.main("status")[1]
    merged = [e for e in kg.events(task_id) if e["type"] == "task_merged"]
    assert len(merged) == 1 and merged[0]["into"] == "main" and merged[0]["commit"] == _sha(repo)
    assert not list((kg.home / "worktrees").glob(".merge-*")), "no temporary worktree left"


def test_merge_into_a_branch_that_is_not_checked_out(kg: Kugetsu, repo: Path) -> None:
    git(repo, "branch", "release")
    (task_id,) = _run(kg, repo, _writes(("a.txt", "x\n")))
    main = _sha(repo)
    code, out, err = kg.main("merge", str(task_id), "--into", "release", "--keep")
    assert code == 0, err
    assert f"merged into release (merge, {_sha(repo, 'release')[:12]})" in out
    assert _sha(repo) == main and not (repo / "a.txt").exists(), "main and the checkout untouched"
    assert git(repo, "show", "release:a.txt") == "x\n"
    assert f"kugetsu/{task_id}" in _branches(repo), "--keep keeps the branch"
    assert kg.task(task_id)["review"] == "merged"
    code, _, err = kg.main("merge", str(task_id), "--into", "nope")
    assert code == 2 and "no branch 'nope'" in err


def test_merge_refuses_a_dirty_checkout_and_changes_nothing(kg: Kugetsu, repo: Path) -> None:
    (task_id,) = _run(kg, repo, _writes(("a.txt", "x\n")))
    (repo / "README.md").write_text("my own edit\n")
    main = _sha(repo)
    result = kg.cli("merge", str(task_id))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"kugetsu: error: main is checked out in {repo} with local changes; commit or stash them first\n"
    )
    assert _sha(repo) == main and (repo / "README.md").read_text() == "my own edit\n"
    assert f"kugetsu/{task_id}" in _branches(repo) and kg.task(task_id)["review"] == "unreviewed"


def test_a_conflict_changes_nothing_exits_1_and_names_the_files(kg: Kugetsu, repo: Path) -> None:
    first, second = _run(kg, repo, _writes(("x.txt", "one\n"), ("y.txt", "1")), _writes(("x.txt", "two\n")))
    assert kg.main("merge", str(first))[0] == 0
    main = _sha(repo)
    for how in ([], ["--squash"], ["--rebase"]):
        result = kg.cli("merge", str(second), *how)
        assert result.returncode == 1, result.stderr
        assert result.stderr == (
            f"kugetsu: task {second}: conflict merging into main in x.txt; nothing was changed\n"
        )
        assert _sha(repo) == main and (repo / "x.txt").read_text() == "one\n"
        assert git(repo, "status", "--porcelain") == ""
        assert not (repo / ".git" / "MERGE_HEAD").exists() and not (repo / ".git" / "rebase-merge").exists()
        assert _worktrees(repo) == [str(repo)] and not list((kg.home / "worktrees").glob(".merge-*"))
    assert f"kugetsu/{second}" in _branches(repo) and kg.task(second)["review"] == "unreviewed"


def test_squash_makes_one_commit(kg: Kugetsu, repo: Path) -> None:
    prompt = script(
        ["write", "a.txt", "a"], ["git-commit", "one"], ["write", "b.txt", "b"], ["git-commit", "two"]
    )
    (task_id,) = _run(kg, repo, prompt)
    assert kg.task(task_id)["changes"]["commits"] == 2
    before = _sha(repo)
    code, out, err = kg.main("merge", str(task_id), "--squash")
    assert code == 0, err
    assert "(squash, " in out
    assert git(repo, "log", "-1", "--format=%P").split() == [before], "one commit, one parent"
    assert git(repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert sorted(git(repo, "show", "--name-only", "--format=").split()) == ["a.txt", "b.txt"]
    assert f"kugetsu task {task_id}" in git(repo, "log", "-1", "--format=%b")


def test_rebase_replays_the_commits_on_the_target(kg: Kugetsu, repo: Path) -> None:
    prompt = script(
        ["write", "a.txt", "a"], ["git-commit", "one"], ["write", "b.txt", "b"], ["git-commit", "two"]
    )
    (task_id,) = _run(kg, repo, prompt)
    (repo / "later.txt").write_text("main moved on\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main moved on")
    moved = _sha(repo)
    code, _, err = kg.main("merge", str(task_id), "--rebase")
    assert code == 0, err
    assert git(repo, "log", "--format=%s", f"{moved}..HEAD").split() == ["two", "one"]
    assert all(len(p.split()) == 1 for p in git(repo, "log", "--format=%P", f"{moved}..HEAD").splitlines())
    assert _sha(repo, "HEAD~2") == moved and (repo / "b.txt").exists() and (repo / "later.txt").exists()


def test_discard_removes_the_work_and_refuses_a_live_task(kg: Kugetsu, repo: Path) -> None:
    (failed,) = _run(kg, repo, script(["write", "half.txt", "x"], ["exit", 3]), ok=False)
    where = Path(kg.task(failed)["worktree"])
    assert where.is_dir()
    code, out, err = kg.main("discard", str(failed))
    assert code == 0, err
    assert out == f"task {failed}: discarded: removed its worktree {where} and branch kugetsu/{failed}\n"
    assert (
        not where.exists() and f"kugetsu/{failed}" not in _branches(repo) and _worktrees(repo) == [str(repo)]
    )
    task = kg.task(failed)
    assert (task["review"], task["worktree"], task["branch"]) == ("discarded", None, None)
    assert [e["type"] for e in kg.events(failed)][-1] == "task_discarded"

    gate = kg.root / "gate"
    kg.start_supervisor()
    live = kg.add(script(["write", "w.txt", "x"], ["wait-file", gate]), "--repo", str(repo))
    kg.wait_state(live, "running")
    code, _, err = kg.main("discard", str(live))
    assert code == 2 and err == (
        f"kugetsu: error: task {live} is running; only cancelled or expired or failed or succeeded "
        "tasks can be discarded\n"
    )
    assert (kg.home / "worktrees" / str(live)).is_dir()
    gate.touch()
    kg.wait_state(live, "succeeded")


def test_gc_removes_what_is_left_of_merged_and_empty_tasks_only(kg: Kugetsu, repo: Path) -> None:
    merged, work, empty = _run(kg, repo, _writes(("a.txt", "x")), _writes(("b.txt", "y")), script(["ok"]))
    assert kg.main("merge", str(merged), "--keep")[0] == 0
    # An empty branch left by an older kugetsu, which kept them all.
    git(repo, "branch", f"kugetsu/{empty}", kg.task(empty)["base"]["commit"])
    store = Store(kg.home / "state.db")
    store.update(empty, 0.0, branch=f"kugetsu/{empty}")
    store.close()

    code, out, err = kg.main("gc", "--older-than", "7d")
    assert (code, out) == (0, "nothing to remove\n"), err
    assert {f"kugetsu/{i}" for i in (merged, work, empty)} <= _branches(repo)
    code, out, err = kg.main("gc")
    assert code == 0, err
    assert out.splitlines() == [
        f"task {merged}: removed its branch kugetsu/{merged} (merged)",
        f"task {empty}: removed its branch kugetsu/{empty} (empty)",
    ]
    assert _branches(repo) == {"main", f"kugetsu/{work}"}, "unreviewed work stays"
    assert kg.tasks()[merged]["branch"] is None


def test_merge_keeps_a_worktree_with_ignored_output_and_gc_removes_it(kg: Kugetsu, repo: Path) -> None:
    (repo / ".gitignore").write_text("out/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "ignore out/")
    kg.write_config(agents={**kg.config["agents"], "sh": {"command": ["sh", "-c", "{prompt}"]}})
    made = kg.add("mkdir out && echo 1 > out/r && echo x > t.txt", "--agent", "sh", "--repo", str(repo))
    assert kg.run().returncode == 0
    where = kg.task(made)["worktree"]
    code, out, err = kg.main("merge", str(made))
    assert code == 0, err
    assert "its worktree stays (1 ignored folder): kugetsu gc removes it" in out
    assert Path(where, "out", "r").exists() and (repo / "t.txt").exists()
    code, out, err = kg.main("gc")
    assert code == 0, err
    assert f"task {made}: removed its worktree {where} and branch kugetsu/{made} (merged)" in out
    assert not Path(where).exists() and _worktrees(repo) == [str(repo)]


def test_shell_opens_in_the_worktree(kg: Kugetsu, repo: Path) -> None:
    (failed,) = _run(kg, repo, script(["write", "half.txt", "x"], ["exit", 3]), ok=False)
    kg.env["SHELL"] = "/bin/sh"
    result = kg.cli("shell", str(failed), input='pwd; echo "task $KUGETSU_TASK_ID"; ls\n')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        str(kg.home / "worktrees" / str(failed)),
        "task",
        str(failed),
        "README.md",
        "half.txt",
    ]
    (empty,) = _run(kg, repo, script(["ok"]))
    result = kg.cli("shell", str(empty))
    assert result.returncode == 2 and "has no worktree left" in result.stderr


def test_hooks_hear_of_merges(kg: Kugetsu, repo: Path) -> None:
    heard = kg.root / "heard"
    (task_id,) = _run(kg, repo, _writes(("a.txt", "x")))
    kg.write_config(hooks=[{"on": ["task_merged"], "command": ["sh", "-c", f'cat >> "{heard}"']}])
    kg.start_supervisor()
    assert kg.main("merge", str(task_id))[0] == 0
    event = json.loads(wait_until(lambda: heard.exists() and heard.read_text(), "the hook to run"))
    assert (event["type"], event["task_id"], event["into"]) == ("task_merged", task_id, "main")


def test_an_older_state_database_gains_the_new_columns(kg: Kugetsu) -> None:
    task_id = kg.add(script(["ok"]))
    db = sqlite3.connect(kg.home / "state.db")
    for column in (
        "base_branch",
        "base_commit",
        "files_changed",
        "insertions",
        "deletions",
        "commits",
        "review",
    ):
        db.execute(f"ALTER TABLE tasks DROP COLUMN {column}")
    db.execute("PRAGMA user_version=4")  # a home made before these columns
    db.commit()
    db.close()
    task = kg.task(task_id)
    assert (task["review"], task["changes"], task["base"]["commit"]) == ("unreviewed", None, None)
    assert os.stat(kg.home / "state.db").st_size > 0


def test_worktree_commit_must_be_true_or_false(tmp_path: Path) -> None:
    from kugetsu_tui.engine.config import load_config
    from kugetsu_tui.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text("[worktree]\ncommit = false\n")
    assert load_config(path).worktree_commit is False
    path.write_text('[worktree]\ncommit = "yes"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: [worktree] commit: expected true or false, got 'yes'"


def test_a_requeued_task_measures_against_where_it_started_again(kg: Kugetsu, repo: Path) -> None:
    counter = kg.root / "counter"
    (task_id,) = _run(kg, repo, script(["fail-then-ok", 1, counter], ["write", "a.txt", "x"]), ok=False)
    first = kg.task(task_id)
    assert first["state"] == "failed" and first["branch"] is None, "it changed nothing: no branch"
    (repo / "later.txt").write_text("main moved on\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main moved on")
    assert kg.main("requeue", str(task_id))[0] == 0
    assert kg.run().returncode == 0
    task = kg.task(task_id)
    assert task["base"]["commit"] == _sha(repo) != first["base"]["commit"]
    assert task["changes"] == {"files": 1, "insertions": 1, "deletions": 0, "commits": 1}


def _two_commits_while_main_moves_on(kg: Kugetsu, repo: Path) -> tuple[int, str]:
    """A task that made two commits, and main's tip after it moved on meanwhile."""
    two = script(
        ["write", "a.txt", "a"], ["git-commit", "one"], ["write", "b.txt", "b"], ["git-commit", "two"]
    )
    (task_id,) = _run(kg, repo, two)
    (repo / "later.txt").write_text("main moved on\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main moved on")
    return task_id, _sha(repo)


def _landed(repo: Path, moved: str) -> tuple[int, int]:
    """(commits on main's first-parent line since `moved`, parents of main's tip)."""
    line = git(repo, "rev-list", "--first-parent", "--count", f"{moved}..HEAD").strip()
    assert sorted(git(repo, "ls-tree", "--name-only", "HEAD").split()) == [
        "README.md",
        "a.txt",
        "b.txt",
        "later.txt",
    ]
    return int(line), len(git(repo, "log", "-1", "--format=%P").split())


# A merge commit with two parents; one squashed commit; the task's two commits replayed.
SHAPES = {"merge": (1, 2), "squash": (1, 1), "rebase": (2, 1)}


@pytest.mark.parametrize("how", sorted(SHAPES))
def test_merge_strategy_by_name(kg: Kugetsu, repo: Path, how: str) -> None:
    task_id, moved = _two_commits_while_main_moves_on(kg, repo)
    code, out, err = kg.main("merge", str(task_id), "--strategy", how)
    assert code == 0, err
    assert f"merged into main (checked out in {repo}) ({how}, {_sha(repo)[:12]})" in out
    assert _landed(repo, moved) == SHAPES[how]
    assert [e["strategy"] for e in kg.events(task_id) if e["type"] == "task_merged"] == [how]


def test_the_config_offers_every_merge_strategy() -> None:
    assert tuple(str(how) for how in Strategy) == MERGE_STRATEGIES


def test_the_configured_strategy_is_the_default_and_a_flag_overrides_it(kg: Kugetsu, repo: Path) -> None:
    kg.write_config(review={"strategy": "squash"})
    task_id, moved = _two_commits_while_main_moves_on(kg, repo)
    code, out, err = kg.main("merge", str(task_id))
    assert code == 0 and "(squash, " in out, err
    assert _landed(repo, moved) == SHAPES["squash"]

    (other,) = _run(kg, repo, _writes(("c.txt", "c")))
    code, out, err = kg.main("merge", str(other), "--strategy", "merge")
    assert code == 0, err
    assert "(merge, " in out and len(git(repo, "log", "-1", "--format=%P").split()) == 2

    (third,) = _run(kg, repo, _writes(("d.txt", "d")))
    result = kg.cli("merge", str(third), "--strategy", "ff")
    assert result.returncode == 2 and result.stderr == (
        "kugetsu merge: error: argument --strategy: expected merge, squash or rebase, got 'ff' "
        "(see kugetsu merge --help)\n"
    )
    kg.write_config(review={"strategy": "ff"})
    result = kg.cli("merge", str(third))
    assert result.returncode == 2 and "[review] strategy" in result.stderr
    assert '"merge", "squash" or "rebase"' in result.stderr and "Traceback" not in result.stderr


def test_diff_shows_the_new_files_an_agent_left_uncommitted(kg: Kugetsu, repo: Path) -> None:
    """New files are in the patch and its --stat (not ignored ones, nor setup's), and the
    worktree's own index stays as the agent left it."""
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "ignore logs")
    kg.write_config(
        worktree={"commit": False, "setup": ["sh", "-c", "echo dep > vendored.txt"]},
        agents={**kg.config["agents"], "sh": {"command": ["sh", "-c", "{prompt}"]}},
    )
    made = kg.add(
        "echo edited >> README.md && mkdir -p src && echo 'print(1)' > src/new.py && echo x > build.log",
        "--agent",
        "sh",
        "--repo",
        str(repo),
    )
    assert kg.run().returncode == 0
    where = Path(kg.task(made)["worktree"])
    before = git(where, "status", "--porcelain")
    assert "?? src/" in before

    code, out, err = kg.main("diff", str(made))
    assert (code, err) == (0, "")
    files = [line.removeprefix("+++ b/") for line in out.splitlines() if line.startswith("+++ b/")]
    assert files == ["README.md", "src/new.py"], "not build.log (ignored) nor vendored.txt (setup's)"
    assert "new file mode 100644" in out and "+print(1)" in out
    code, out, _ = kg.main("diff", str(made), "--stat")
    assert code == 0 and "src/new.py | 1 +" in out and "2 files changed, 2 insertions(+)" in out
    assert git(where, "status", "--porcelain") == before, "the worktree's index untouched"

    # Committed on its branch (the default), the new file is in the diff of the branch.
    kg.write_config()
    (committed,) = _run(kg, repo, _writes(("fresh.txt", "new\n")))
    assert kg.task(committed)["worktree"] is None
    code, out, _ = kg.main("diff", str(committed))
    assert code == 0 and "+++ b/fresh.txt" in out and "new file mode" in out


def test_gc_writes_an_event_per_thing_removed_and_hooks_hear_them(kg: Kugetsu, repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "ignore logs")
    (kept, empty) = _run(kg, repo, _writes(("a.txt", "x"), ("build.log", "out")), script(["ok"]))
    where = kg.task(kept)["worktree"]
    assert kg.main("merge", str(kept), "--keep")[0] == 0
    tip = _sha(repo, f"kugetsu/{kept}")
    git(repo, "branch", f"kugetsu/{empty}", kg.task(empty)["base"]["commit"])  # left by an older kugetsu
    store = Store(kg.home / "state.db")
    store.update(empty, 0.0, branch=f"kugetsu/{empty}")
    store.close()
    heard = kg.root / "heard"
    removals = ["worktree_removed", "branch_removed"]
    kg.write_config(hooks=[{"on": removals, "command": ["sh", "-c", f'cat >> "{heard}"; echo >> "{heard}"']}])
    kg.start_supervisor()

    code, out, err = kg.main("gc")
    assert code == 0, err
    assert out.splitlines() == [
        f"task {kept}: removed its worktree {where} and branch kugetsu/{kept} (merged)",
        f"task {empty}: removed its branch kugetsu/{empty} (empty)",
    ]
    gone = [(e["type"], e["task_id"]) for e in kg.events() if e["type"] in removals]
    assert gone == [("worktree_removed", kept), ("branch_removed", kept), ("branch_removed", empty)]
    worktree_event, branch_event = (e for e in kg.events(kept) if e["type"] in removals)
    assert (worktree_event["worktree"], worktree_event["why"]) == (where, "merged")
    assert (branch_event["branch"], branch_event["commit"], branch_event["why"]) == (
        f"kugetsu/{kept}",
        tip,
        "merged",
    )
    git(repo, "branch", "again", branch_event["commit"])  # what gc removed can be had back

    def three() -> list[dict[str, object]] | None:
        text = heard.read_text() if heard.exists() else ""
        lines = [line for line in text.splitlines() if line.strip()]
        return [json.loads(line) for line in lines] if len(lines) == 3 else None

    hooks = wait_until(three, "the hook to hear the three removals")
    assert sorted((h["type"], h["task_id"]) for h in hooks) == sorted(gone)
