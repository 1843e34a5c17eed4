"""The keys of config.toml's agent and hook tables (`[agents.NAME]`, `[[hooks]]`), declared
once as keys.py declares the rest."""

from __future__ import annotations

from kugetsu_tui.engine.agents import OUTPUTS
from kugetsu_tui.engine.config.keys import BUILTIN_AGENTS, Env, Key, Patterns, Table
from kugetsu_tui.engine.config.kinds import (
    ATTEMPTS,
    CAP,
    Answers,
    Argv,
    Choice,
    Cores,
    Duration,
    Events,
    Flag,
    OneOf,
    Size,
)
from kugetsu_tui.engine.model import EventType, PromptVia

AGENT = Table(
    "[agents.NAME]",
    (
        Key(
            "command",
            Argv('a non-empty list of strings like ["opencode", "run", "{prompt}"]'),
            None,
            "The command line, an argv list (never a shell string). Placeholders are replaced inside "
            "the element that holds them: {prompt} the task's text (always one argument), {task_id} "
            "the task's id, {worktree} the folder the agent runs in.",
            required=True,
        ),
        Key(
            "args",
            Argv('a list of strings like ["--model", "sonnet"]', empty=True),
            (),
            "Options added to the command just before its {prompt} element (at its end if it has "
            "none): the light way to adjust a built-in agent; `command` replaces it whole.",
            example=["--model", "sonnet"],
        ),
        Key(
            "est_rss",
            Size(),
            1.0 * 2**30,
            "Memory one agent (its whole process tree) is expected to use until one has been measured "
            "(then the median of what was measured); unset, the built-in agents use a preset.",
        ),
        Key(
            "est_cpu", Cores(), 0.5, "Cores one agent is expected to keep busy, until measured like est_rss."
        ),
        Key(
            "max_live",
            CAP,
            None,
            "At most this many of this agent live at once (inside the global cap).",
            example=2,
        ),
        Key(
            "output",
            Choice(OUTPUTS),
            None,
            'How its log is read: "text", or the JSON lines of claude (-p --output-format '
            "stream-json), codex (exec --json) or opencode (run --format json), from which the "
            "final message, tokens and cost are taken. Unset: the built-in agent's, else text.",
            example="text",
        ),
        Key(
            "env",
            Env(),
            None,
            "Environment variables for this agent only, over the supervisor's own (a base URL, a "
            "key): never on its command line, and shown masked.",
            example={"ANTHROPIC_BASE_URL": "http://127.0.0.1:8080"},
        ),
        Key(
            "timeout",
            Duration(above_zero=True),
            None,
            "The default timeout of this agent's tasks (over [queue] timeout; add --timeout wins).",
            example=3600.0,
        ),
        Key(
            "stall_after",
            Duration(above_zero=True),
            None,
            "A running attempt with no new output and its processes under 1% CPU for this long is "
            "stalled: flagged in status with a task_stalled event. Unset: never.",
            example=600.0,
        ),
        Key(
            "on_stall",
            Choice(("warn", "fail")),
            "warn",
            '"warn": only flag a stalled attempt; "fail": end it as a failed attempt (retried while '
            "attempts remain).",
        ),
        Key(
            "rate_limit",
            Patterns(),
            None,
            "Regular expressions searched (case-insensitively) in the errors a failed attempt reported "
            "and its log's other lines; a match is not a failure: the attempt is given back and the "
            "agent cools down while others run. Unset: 429, 529, overloaded, rate limit … for a "
            "built-in agent, none for others.",
            example=["429", "rate.?limit"],
        ),
        Key(
            "fatal",
            Patterns(),
            None,
            "Regular expressions for errors no retry can fix (not logged in, a bad key): the task "
            "fails at once with that line as its reason. Unset: the built-in agent's, none for others.",
            example=["not logged in", "invalid api key"],
        ),
        Key(
            "suspend_after",
            ATTEMPTS,
            2,
            "After this many fatal failures in a row the agent is suspended: its queued tasks wait "
            "with the reason until the supervisor restarts, and other agents keep running.",
        ),
        Key(
            "cooldown",
            Duration(),
            30.0,
            "The first cooldown after a rate limit; it doubles with each one in a row.",
        ),
        Key("cooldown_max", Duration(), 1800.0, "The longest cooldown."),
        Key(
            "resume",
            Flag(),
            True,
            "A built-in agent (claude, codex, opencode) run by its own command (args allowed): the "
            "attempt after a rate limit, a timeout, a stall or an interruption continues the agent's "
            "session (claude --resume ID, codex exec resume ID, opencode run --session ID) with the "
            "requeue note, else a short message to go on, as its prompt; after a plain failure it "
            "starts afresh. false: every attempt starts afresh.",
        ),
        Key(
            "prompt_via",
            OneOf(PromptVia),
            PromptVia.ARGV,
            '"argv" ({prompt} in the command), "stdin" (the prompt on the agent\'s stdin), or "file" '
            "({prompt} becomes the path of a private file holding it). Use stdin or file for prompts "
            "larger than the command-line limit or holding a NUL byte.",
        ),
        Key(
            "terminal",
            Flag(),
            False,
            "Run the agent in a pseudo-terminal (a tmux session; needs tmux) that `kugetsu attach ID` "
            "steps into and `kugetsu send ID TEXT` types into; its output still goes to its log.",
        ),
        Key(
            "answer",
            Answers(),
            None,
            "Terminal agents: rules that answer routine prompts, each a [[agents.NAME.answer]] table. "
            "When the screen has not changed for a sample and its last lines match `match` (a regular "
            "expression, case as written), `send` is typed with Enter, at most `max` (1 to 100, "
            'default 3) times an attempt; a task_input_given event (by = "rule") and a line in the '
            "log record it. A prompt no rule matches raises the needs-input flag. Unset: none.",
            example=[{"match": "Proceed\\? \\[y/N\\]", "send": "y", "max": 3}],
        ),
        Key(
            "idle_after",
            Duration(above_zero=True),
            5.0,
            "A terminal agent whose screen has not changed for this long and whose last line asks "
            "something needs input: an answer rule replies, else its flag is raised.",
        ),
        Key(
            "prompts",
            Patterns(),
            None,
            "More regular expressions for a terminal agent's last line that mean it asks something, "
            "beside the built-in ones (?, [y/N], (y/n), >, Press Enter, Do you want).",
            example=["Continue\\? \\(c\\)"],
        ),
        Key(
            "timeout_counts_waiting",
            Flag(),
            True,
            "Whether the time a task spends needing input (its flag raised) counts toward its "
            "timeout; false pauses the timeout while it waits for a person. Waiting never counts "
            "toward stall_after.",
        ),
    ),
    "Agents: a table here overrides a built-in one (" + ", ".join(BUILTIN_AGENTS) + ") or adds a new "
    "name, which needs only `command`.",
    "a table with command = [...]",
)
HOOK = Table(
    "[[hooks]]",
    (
        Key(
            "on",
            Events('a list of event names like ["task_error"]', EventType),
            None,
            "The events that run it: " + ", ".join(str(e) for e in EventType) + ".",
            required=True,
            example=["task_error"],
        ),
        Key(
            "command",
            Argv("a non-empty list of strings"),
            None,
            "The command (argv) run with the event's JSON on stdin (never on its command line).",
            required=True,
            example=["sh", "-c", 'cat >> "$HOME/kugetsu-events.jsonl"'],
        ),
        Key("timeout", Duration(), 30.0, "The hook is ended after this long."),
        Key(
            "debounce",
            Duration(),
            0.0,
            'Above 0: one summary event ({"type": "summary", "text": "5 succeeded, 1 failed", '
            '"events": [...]}) for everything that came in that long.',
        ),
    ),
    "Hooks: a command run on chosen events, in the background; a failing or slow hook is logged as "
    "hook_failed and never holds up admission.",
    "a table",
)
