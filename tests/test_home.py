"""The home is private: folders 0700 and files 0600, whatever the umask, and the engine
never imports Textual."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
from pathlib import Path

from tests.helpers.harness import PY, Kugetsu, git, script


def _modes(home: Path) -> dict[str, int]:
    """Every path under home and its permission bits, except git worktrees: a checkout of
    the person's repo keeps git's modes, and is private because worktrees/ itself is."""
    found = {}
    worktrees = home / "worktrees"
    for path in [home, *home.rglob("*")]:
        if worktrees in path.parents:
            continue
        found[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _not_private(home: Path) -> dict[str, str]:
    wrong = {}
    for name, mode in _modes(home).items():
        path = home / name
        want = 0o700 if path.is_dir() and not path.is_symlink() else 0o600
        if mode != want:
            wrong[name] = f"{mode:o}"
    return wrong


def test_files_0600_and_folders_0700_under_the_home(kg: Kugetsu, repo: Path) -> None:
    old = os.umask(0o022)  # the usual umask: what the engine creates must not depend on it
    try:
        kg.start_supervisor()
        dirty = kg.add(
            script(["write", "notes.txt", "x"], ["exit", 3]), "--repo", str(repo), "--max-attempts", "1"
        )
        failed = kg.add(script(["exit", 4]), "--max-attempts", "1")
        done = kg.add(script(["print-lines", 10]))
        for task_id in (dirty, failed, done):
            kg.wait_state(task_id, "succeeded", "failed")
        assert kg.cli("cap", "4").returncode == 0
        names = _modes(kg.home)
        for expected in (
            "state.db",
            "supervisor.lock",
            "config.toml",
            f"runs/{done}/log",
            f"runs/{done}/exit",
        ):
            assert expected in names
        assert (kg.home / "worktrees" / str(dirty) / "notes.txt").exists(), "the dirty worktree is kept"
        assert _not_private(kg.home) == {}, "while the supervisor runs"
        kg.stop_supervisor(kg.supervisors[0])
        assert _not_private(kg.home) == {}, "after it stopped"
    finally:
        os.umask(old)


def test_a_new_home_is_made_private(tmp_path: Path) -> None:
    home = tmp_path / "a" / "new" / "home"
    env = {**os.environ, "KUGETSU_HOME": str(home)}
    result = subprocess.run(
        [PY, "-m", "kugetsu_tui", "add", "--force", "--no-worktree", "--repo", str(tmp_path), "x"],
        env=env,
        capture_output=True,
        text=True,
        umask=0o022,
    )
    assert result.returncode == 0, result.stderr
    assert _not_private(home) == {}


IMPORTS = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import kugetsu_tui.engine
    names = [m.name for m in pkgutil.iter_modules(kugetsu_tui.engine.__path__, "kugetsu_tui.engine.")]
    for name in names + %s:
        importlib.import_module(name)
    print(json.dumps({"engine": names, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
          ("textual", "psutil", "kugetsu_tui"))}))
    """
)


def _loaded(*extra: str) -> dict[str, list[str]]:
    code = IMPORTS % (list(extra),)
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def test_the_engine_and_the_cli_do_not_import_textual() -> None:
    result = _loaded("kugetsu_tui.cli", "kugetsu_tui.present", "kugetsu_tui.demo")
    assert "kugetsu_tui.engine.supervisor" in result["engine"], "every engine module was imported"
    assert "kugetsu_tui.engine.store" in result["loaded"]
    assert not [m for m in result["loaded"] if m.split(".")[0] == "textual"]


def test_add_and_headless_run_load_no_textual(kg: Kugetsu) -> None:
    """The real commands, run to the end in a fresh interpreter: which modules did they load?"""
    code = textwrap.dedent(
        f"""
        import json, sys
        from kugetsu_tui import cli
        out = {{}}
        for argv in (["add", "--no-worktree", "--repo", {str(kg.work)!r}, "ok"], ["run", "--headless"]):
            code = cli.main(["--home", {str(kg.home)!r}, *argv])
            out[argv[0]] = [code, sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "psutil"))]
        print(json.dumps(out), file=sys.stderr)
        """
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=kg.env)
    loaded = json.loads(done.stderr.splitlines()[-1])
    assert loaded["add"][0] == 0 and loaded["add"][1] == [], "add loads neither Textual nor psutil"
    assert loaded["run"][0] == 0
    assert not [m for m in loaded["run"][1] if m.startswith("textual")]


def test_a_quarantined_database_takes_its_runs_and_worktrees_along(kg: Kugetsu, repo: Path) -> None:
    """A corrupt state.db is set aside with the runs and worktrees of its tasks: the new
    task 1 neither shows the old task 1's log nor runs in its worktree or on its branch."""
    seen, starts = kg.root / "seen", kg.root / "starts"
    kg.write_config(worktree={"commit": False})  # its notes.txt stays in its worktree
    old = kg.add(
        script(["say", "old secret output"], ["write", "notes.txt", "old work"]), "--repo", str(repo)
    )
    assert kg.run().returncode == 0
    assert kg.task(old)["worktree"] == str(kg.home / "worktrees" / "1")  # kept: notes.txt
    with open(kg.home / "state.db", "r+b") as db:  # a real file, broken where SQLite looks first
        db.write(b"\xff" * 4096)

    broken = kg.cli("status")
    assert broken.returncode == 2 and "state database is corrupt" in broken.stderr, broken.stderr
    (runs,) = kg.home.glob("runs.corrupt-*")
    (trees,) = kg.home.glob("worktrees.corrupt-*")
    assert "old secret output" in (runs / "1" / "log").read_text()
    assert (trees / "1" / "notes.txt").read_text() == "old work"
    assert str(trees / "1") in git(repo, "worktree", "list"), "git still knows the moved worktree"

    new = kg.add(script(["record", starts], ["check", "notes.txt", seen]), "--repo", str(repo))
    assert new == 1
    assert kg.run().returncode == 0
    task = kg.task(new)
    assert json.loads(starts.read_text())["cwd"] == str(kg.home / "worktrees" / "1")
    assert seen.read_text().split() == ["no"], "the new task 1 saw the old task 1's files"
    assert task["branch"] != "kugetsu/1" and git(repo, "log", "-1", "--format=%s", "kugetsu/1")
    shown = kg.cli("logs", str(new))
    assert "old secret output" not in shown.stdout


def test_a_task_never_starts_in_a_worktree_folder_it_did_not_make(kg: Kugetsu, repo: Path) -> None:
    """A worktree left at the task's path by someone else (here: made by hand, as a deleted
    state.db would leave one) is refused, and nothing runs in it."""
    stray = kg.home / "worktrees" / "1"
    git(repo, "worktree", "add", "-q", "-b", "stray", str(stray))
    (stray / "theirs.txt").write_text("someone's work")
    ran = kg.root / "ran"
    task_id = kg.add(script(["record", ran]), "--repo", str(repo), "--max-attempts", "1")
    assert kg.run().returncode == 1
    task = kg.task(task_id)
    assert task["state"] == "failed" and "was not made for this task" in task["reason"], task["reason"]
    assert not ran.exists() and (stray / "theirs.txt").read_text() == "someone's work"
