"""Each task in its own git worktree on kugetsu/<id>: made once, reused by retries, removed
when clean (the branch stays), kept and shown when dirty."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.harness import Kugetsu, git, script


def _branches(repo: Path) -> set[str]:
    return set(git(repo, "branch", "--format=%(refname:short)").split())


def _worktrees(repo: Path) -> list[str]:
    return [
        line.removeprefix("worktree ")
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_worktree_on_its_branch_reused_by_retries_and_removed_when_clean(kg: Kugetsu, repo: Path) -> None:
    (repo / "later.txt").write_text("a second commit\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "second")
    head = git(repo, "rev-parse", "HEAD").strip()
    starts, seen, counter = kg.root / "starts", kg.root / "seen", kg.root / "counter"
    task_id = kg.add(
        script(
            ["record", starts],
            ["check", "partial.txt", seen],
            ["write", "partial.txt", "work in progress"],
            ["fail-then-ok", 1, counter],
            ["git-commit", "agent work"],
        ),
        "--repo",
        str(repo),
    )
    assert kg.task(task_id)["repo"] == str(repo)

    result = kg.run()
    assert result.returncode == 0, result.stdout + result.stderr
    where = kg.home / "worktrees" / str(task_id)
    runs = [json.loads(line) for line in starts.read_text().splitlines()]
    assert [r["cwd"] for r in runs] == [str(where), str(where)]
    assert seen.read_text().split() == ["no", "yes"], "the retry found the first attempt's work"

    task = kg.task(task_id)
    assert (task["state"], task["attempts"]) == ("succeeded", 2)
    assert task["branch"] == f"kugetsu/{task_id}"
    assert task["worktree"] is None and not where.exists(), "a clean worktree is removed"
    assert str(where) not in _worktrees(repo)
    assert f"kugetsu/{task_id}" in _branches(repo), "the branch stays"
    log = git(repo, "log", "--format=%s %P", "-1", f"kugetsu/{task_id}").split()
    assert log == ["agent", "work", head], "the branch starts at the repo's HEAD and keeps the work"
    # The person's own checkout was not touched.
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain") == ""


def test_a_dirty_worktree_is_kept_and_shown(kg: Kugetsu, repo: Path) -> None:
    kg.write_config(worktree={"commit": False})  # a success's changes stay uncommitted
    done = kg.add(script(["write", "notes.txt", "unfinished"]), "--repo", str(repo))
    failed = kg.add(
        script(["write", "half.txt", "x"], ["exit", 3]), "--repo", str(repo), "--max-attempts", "1"
    )
    clean = kg.add(script(["ok"]), "--repo", str(repo))
    assert kg.run().returncode == 1

    tasks = kg.tasks()
    for task_id, name in ((done, "notes.txt"), (failed, "half.txt")):
        where = kg.home / "worktrees" / str(task_id)
        assert tasks[task_id]["worktree"] == str(where)
        assert (where / name).exists()
        assert str(where) in _worktrees(repo)
    assert tasks[clean]["worktree"] is None and not (kg.home / "worktrees" / str(clean)).exists()
    assert {f"kugetsu/{i}" for i in (done, failed)} <= _branches(repo)
    assert f"kugetsu/{clean}" not in _branches(repo), "a task that changed nothing leaves no branch"

    shown = kg.cli("status")
    assert shown.returncode == 0
    assert f"[kept {kg.home / 'worktrees' / str(done)}]" in shown.stdout
    assert f"[kept {kg.home / 'worktrees' / str(failed)}]" in shown.stdout


def test_repo_defaults_to_the_git_repo_of_the_current_directory(kg: Kugetsu, repo: Path) -> None:
    sub = repo / "src" / "deep"
    sub.mkdir(parents=True)
    added = kg.cli("add", "from a subfolder", cwd=sub)
    assert added.returncode == 0, added.stderr
    task = kg.task(int(added.stdout))
    assert task["repo"] == str(repo)
    added = kg.cli("add", "--no-worktree", "right here", cwd=sub)
    assert added.returncode == 0, added.stderr
    assert kg.task(int(added.stdout))["repo"] == str(sub)


def test_ignored_output_is_kept_and_setup_files_are_not_output(kg: Kugetsu, repo: Path) -> None:
    """Files the agent made that git ignores (results under an ignored `out/`) are its
    output: the worktree stays and an event says why. What `[worktree] setup` made (an
    ignored `.cache/` here) is not output: a worktree with only that is removed."""
    (repo / ".gitignore").write_text("out/\n.cache/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "ignore")
    kg.write_config(
        agents={**kg.config["agents"], "sh": {"command": ["sh", "-c", "{prompt}"]}},
        worktree={"setup": ["sh", "-c", "mkdir .cache && echo dep > .cache/dep"]},
    )
    made = kg.add("mkdir out && echo 42 > out/result.txt", "--agent", "sh", "--repo", str(repo))
    untracked = kg.add("echo notes > notes.txt && echo more > more.txt", "--agent", "sh", "--repo", str(repo))
    nothing = kg.add("true", "--agent", "sh", "--repo", str(repo))
    assert kg.run().returncode == 0

    tasks = kg.tasks()
    where = kg.home / "worktrees" / str(made)
    assert tasks[made]["worktree"] == str(where) and (where / "out" / "result.txt").read_text() == "42\n"
    assert str(where) in _worktrees(repo)
    # New untracked files of a success are committed on its branch (setup's are not).
    assert tasks[untracked]["worktree"] is None
    committed = git(repo, "show", "--name-only", "--format=", f"kugetsu/{untracked}").split()
    assert sorted(committed) == ["more.txt", "notes.txt"]
    assert tasks[nothing]["worktree"] is None and not (kg.home / "worktrees" / str(nothing)).exists()
    kept = {e["task_id"]: e["reason"] for e in kg.events() if e["type"] == "worktree_kept"}
    assert kept == {made: "kept: 1 ignored folder"}
    assert tasks[made]["reason"] == "kept: 1 ignored folder", "status says why"
    assert f"[kept {where}]" in kg.cli("status").stdout


def test_worktrees_of_one_repo_made_at_once_do_not_break_each_other(kg: Kugetsu, repo: Path) -> None:
    # One task's `git worktree prune` beside another's `git worktree add` used to delete
    # the half-made entry: "could not open '.git/worktrees/N/gitdir' for writing".
    kg.write_config(capacity={"cap": 8, "memory_reserve": 0})
    ids = [kg.add(script(["write", f"f{n}.txt", str(n)]), "--repo", str(repo)) for n in range(8)]
    result = kg.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(kg.task(i)["state"] == "succeeded" for i in ids)
