"""One validation of a new task, whichever face it came from: `kugetsu add` (options or
JSON lines), the dashboard's form, an MCP tool.

Owns the rules a task must meet before it is queued and the one-line message for each
broken rule (prefixed with where the task came from: "tasks.jsonl:3: "). Takes raw values,
returns a `NewTask` or raises `UsageError`; never writes to the store.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from kugetsu_tui.engine import markers, runner
from kugetsu_tui.engine.agents import PRESETS
from kugetsu_tui.engine.config import AgentConfig, Config
from kugetsu_tui.engine.config.kinds import ATTEMPTS, PRIORITY, TASK_ID, TIMEOUT, Whole
from kugetsu_tui.engine.model import NewTask, PromptVia
from kugetsu_tui.engine.store import Store
from kugetsu_tui.engine.text import printable
from kugetsu_tui.errors import ConfigError, UsageError

MAX_ARG_BYTES = 131072  # Linux: one argv element, its NUL included (MAX_ARG_STRLEN)
ADD_KEYS = (
    "prompt",
    "repo",
    "agent",
    "priority",
    "max_attempts",
    "timeout",
    "no_worktree",
    "after",
    "after_any",
    "key",
    "base",
)
Spec = Mapping[str, object]


class Intake:
    """Checks new tasks against one config and store.

    Keep one Intake for a batch (a JSON-lines file): each repo path is resolved once.
    Tasks added from inside a running agent of this home record that task as their parent.
    With check_program, a task for an agent whose program is not on PATH is refused
    (`missing_program`); without it, it is queued and fails when it runs."""

    def __init__(
        self,
        config: Config,
        store: Store,
        cwd: Callable[[], str] = os.getcwd,
        environ: Mapping[str, str] = os.environ,
        *,
        check_program: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self.cwd = cwd
        self.environ = environ
        self.check_program = check_program
        self.parent = caller_task(store, environ)
        self._repos: dict[tuple[str, bool], str] = {}
        self._checked_programs: set[str] = set()  # agents whose program was found

    def task(self, spec: Spec, where: str = "", *, typed: bool = True) -> NewTask:
        """`spec` (keys of ADD_KEYS, absent = default) as a NewTask; `where` prefixes errors.

        typed=False: numbers may come as text, as a form field gives them."""
        with _at(where):
            return self._task(spec, typed)

    def json_lines(self, text: str, source: str) -> list[NewTask]:
        """JSON lines, one task each (blank lines skipped); the first bad line rejects all."""
        tasks = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                where = f"{source}:{n}: "
                with _at(where):
                    spec = _json_spec(line)
                tasks.append(self.task(spec, where))
        if not tasks:
            raise UsageError(f"--from-file {source}: no tasks in it (expected JSON lines, one task each)")
        return tasks

    def _task(self, spec: Spec, typed: bool) -> NewTask:
        # Checked in this order, so the first mistake of several is the one reported.
        prompt = _prompt(spec.get("prompt"))
        agent = self._agent(spec.get("agent"), prompt)
        priority = _whole(spec.get("priority", 0), "priority", PRIORITY, typed=typed)
        max_attempts = self._attempts(spec.get("max_attempts"), typed)
        timeout = _timeout(spec.get("timeout"))
        no_worktree = _flag(spec, "no_worktree")
        repo = self._repo(spec.get("repo"), no_worktree)
        after = self._after(spec.get("after"))
        key, base = _name(spec, "key"), _name(spec, "base")
        return NewTask(
            prompt=prompt,
            agent=agent,
            repo=repo,
            no_worktree=no_worktree,
            priority=priority,
            max_attempts=max_attempts,
            timeout=timeout,
            key=key,
            base=base,
            after=after,
            after_any=_flag(spec, "after_any"),
            parent=self.parent,
        )

    def _agent(self, value: object, prompt: str) -> str:
        name = self.config.default_agent if value is None else value
        if not isinstance(name, str):
            raise UsageError(f"agent: expected an agent name, got {name!r}")
        agent = self.config.agent(name)  # raises for an unknown agent
        _check_command(agent, self.config.path)
        if name not in self._checked_programs:  # (a file of 10,000 tasks looks once per agent)
            check_terminal(agent)
            # On a cluster the program is looked for on the node that runs it, not here.
            local = self.config.executor_kind == "local"
            if self.check_program and local and (missing := missing_program(agent, self.environ)):
                raise UsageError(missing)
            self._checked_programs.add(name)
        if agent.prompt_via == PromptVia.ARGV:
            _fits_argv(prompt)
        return name

    def _attempts(self, value: object, typed: bool) -> int:
        # `is None`, not `or`: an explicit 0 is a mistake to report, not a default.
        attempts = self.config.max_attempts if value is None else value
        return _whole(attempts, "max_attempts", ATTEMPTS, typed=typed)

    def _repo(self, value: object, no_worktree: bool) -> str:
        if value is not None and not isinstance(value, str):
            raise UsageError(f"repo: expected a path, got {value!r}")
        if value is not None:
            _text(value, "repo")
        raw = str(Path(value).expanduser()) if value else self.cwd()
        if (raw, no_worktree) not in self._repos:
            self._repos[raw, no_worktree] = _resolve_repo(Path(raw).resolve(), no_worktree)
        return self._repos[raw, no_worktree]

    def _after(self, value: object) -> tuple[int, ...]:
        items = value or []
        if isinstance(items, str):
            items = [part for part in items.split(",") if part.strip()]
        if not isinstance(items, list):
            raise UsageError(f"after: expected task ids like [3, 4], got {items!r}")
        ids = []
        for item in items:
            found = None if isinstance(item, bool) else parse_task_id(str(item))
            if found is None:
                raise UsageError(f"after: expected task ids (whole numbers >= 1), got {item!r}")
            if self.store.get(found) is None:
                raise UsageError(f"after: no task {found} (expected an id listed by `kugetsu status`)")
            ids.append(found)
        return tuple(ids)


def found_program(agent: AgentConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """Where the agent's program is (searched on the PATH it would run with), or None. A
    path relative to the worktree is only known there: it counts as found."""
    program = agent.command[0] if agent.command else ""
    if os.sep in program:
        if not os.path.isabs(program) or (os.path.isfile(program) and os.access(program, os.X_OK)):
            return program
        return None
    path = agent.env.get("PATH", environ.get("PATH"))
    return shutil.which(program, path=path) if program and runner.on_path(program, path) else None


def missing_program(agent: AgentConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the agent cannot be started here, in one line (its program is not on the PATH
    it would run with, or not an executable file), or None when it can."""
    if found_program(agent, environ) is not None:
        return None
    program = agent.command[0] if agent.command else ""
    preset = PRESETS.get(agent.name)
    install = f"install it ({preset.install}) or " if preset is not None and preset.install else ""
    where = "not an executable file" if os.sep in program else "not found on PATH"
    return (
        f"agent {printable(agent.name)!r}: its program {printable(program)!r} is {where}; "
        f"{install}set [agents.{printable(agent.name)}] command, or add with --force to queue it anyway"
    )


def caller_task(store: Store, environ: Mapping[str, str] = os.environ) -> int | None:
    """The task whose agent is running this process, if it is one of this store's: every
    agent's processes inherit the run marker (a hash of the home, the task, the attempt),
    which names the task without telling the agent where the home is."""
    home, _, rest = environ.get(markers.MARKER, "").partition(":")
    found = parse_task_id(rest.partition(":")[0])
    if found is None or home != markers.home_id(store.path.parent):
        return None
    return found if store.get(found) is not None else None


def parse_task_id(text: str) -> int | None:
    """A task id written as text (a whole number >= 1 that SQLite can hold), or None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return TASK_ID.parse(text)
    except ValueError:
        return None


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Prefix a UsageError raised inside with where the task came from."""
    try:
        yield
    except UsageError as err:
        if not where:
            raise
        raise UsageError(f"{where}{err}") from None


def _json_spec(line: str) -> Spec:
    try:
        spec = json.loads(line)
    except json.JSONDecodeError as err:
        raise UsageError(f"not valid JSON ({err.msg}); expected one JSON object a line") from None
    if not isinstance(spec, dict):
        raise UsageError(f'expected a JSON object like {{"prompt": "..."}}, got {type(spec).__name__}')
    unknown = set(spec) - set(ADD_KEYS)
    if unknown:
        raise UsageError(f"unknown key {sorted(unknown)[0]!r} (expected: {', '.join(ADD_KEYS)})")
    return spec


def _prompt(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError('empty prompt (expected the task\'s text, e.g. "fix the flaky test")')
    # Bytes that were not UTF-8 arrive from argv as surrogate escapes and reach the agent as
    # they came; any other surrogate (a JSON "\\ud800" without its pair) is no text at all.
    return _text(value, "prompt", "surrogateescape")


def _text(value: str, name: str, errors: str = "strict") -> str:
    """value, if it can be stored and passed on as UTF-8."""
    try:
        value.encode("utf-8", errors)
    except UnicodeEncodeError as err:
        code = ord(value[err.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"a lone surrogate U+{code:04X}"
        raise UsageError(
            f"{name}: {what} at character {err.start} is not text (expected valid UTF-8)"
        ) from None
    return value


def _check_command(agent: AgentConfig, config_path: Path | None) -> None:
    """The program an agent runs comes from the config, never from a prompt."""
    if agent.command and "{prompt}" in agent.command[0]:
        where = f"{config_path}: " if config_path else ""
        raise ConfigError(
            f"{where}[agents.{agent.name}] command: its first element {agent.command[0]!r} would run the "
            'prompt as a program (expected a program first, e.g. ["opencode", "run", "{prompt}"])'
        )


def check_terminal(agent: AgentConfig) -> None:
    """A terminal agent runs under tmux: refuse its task at once rather than queue one that
    can only fail at spawn."""
    if agent.terminal and shutil.which("tmux") is None:
        raise UsageError(
            f"agent {agent.name!r} has terminal = true, which needs tmux, not found on PATH "
            "(expected tmux installed, e.g. apt install tmux, or an agent without terminal = true)"
        )


def _fits_argv(prompt: str) -> None:
    if "\x00" in prompt:
        raise UsageError(
            "the prompt contains a NUL byte, which a command line cannot carry "
            '(expected none, or an agent with prompt_via = "stdin" or "file")'
        )
    size = len(prompt.encode("utf-8", "surrogateescape"))
    if size >= MAX_ARG_BYTES:
        raise UsageError(
            f"the prompt is {size} bytes, more than one command-line argument can carry "
            f'({MAX_ARG_BYTES - 1}); expected a shorter prompt, or an agent with prompt_via = "stdin" or "file"'
        )


def _whole(value: object, name: str, kind: Whole, *, typed: bool) -> int:
    if not typed and isinstance(value, str):
        with suppress(ValueError):  # not a number: reported below with the text as given
            value = int(value.strip())
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected {kind.expected}, got {value!r}") from None


def _timeout(value: object) -> float | None:
    if value is None:
        return None
    try:
        return TIMEOUT(value)  # refuses bools, NaN, infinity and anything past the bound
    except (TypeError, ValueError):
        raise UsageError(f"timeout: expected {TIMEOUT.expected}, got {value!r}") from None


def _flag(spec: Spec, name: str) -> bool:
    value = spec.get(name, False)
    if not isinstance(value, bool):
        raise UsageError(f"{name}: expected true or false, got {value!r}")
    return value


def _name(spec: Spec, name: str) -> str | None:
    value = spec.get(name)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise UsageError(f"{name}: expected a non-empty string, got {value!r}")
    return value if value is None else _text(value, name)


def _resolve_repo(path: Path, no_worktree: bool) -> str:
    from kugetsu_tui.engine.worktree import repo_root

    if no_worktree:
        if not path.is_dir():
            raise UsageError(f"repo {path} does not exist (expected a directory)")
        return str(path)
    return str(repo_root(path))
