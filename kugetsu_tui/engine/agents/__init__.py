"""What kugetsu knows about the agents it runs: built-in presets (presets.py), and how to
read what an attempt printed — one parser per output format (claude.py, codex.py,
opencode.py) into a `Reading` (reading.py, log.py) — and what that means: `verdict`
(verdict.py) turns a reading plus the exit status into success, a plain failure (retried),
a fatal error (not retried) or a rate limit; `next_cooldown` (cooldown.py) is the
rate-limit policy, `cut_slots`/`credit_slots` how rate limits shape concurrency; `stall_check` (stall.py) flags an attempt gone quiet.

Pure: no I/O, no clock; the supervisor passes the log text and the times in. The names
below are the package's interface to the supervisor, the config and the faces.
"""

from kugetsu_tui.engine.agents.cooldown import (
    RECOVER_AFTER,
    Cooldown,
    Slots,
    credit_slots,
    cut_slots,
    next_cooldown,
)
from kugetsu_tui.engine.agents.log import (
    PARSERS,
    attempt_footer,
    attempt_header,
    attempt_output,
    is_mark,
    read_log,
    this_attempt,
)
from kugetsu_tui.engine.agents.presets import (
    FATAL_PATTERNS,
    MASK,
    OUTPUTS,
    PRESETS,
    RATE_LIMIT_PATTERNS,
    Preset,
    masked,
)
from kugetsu_tui.engine.agents.reading import RESULT_CHARS, Reading, Reported
from kugetsu_tui.engine.agents.stall import Activity, stall_check
from kugetsu_tui.engine.agents.verdict import (
    MISSING_COMMAND,
    Outcome,
    Verdict,
    is_fatal_text,
    meaningful_line,
    reported_trouble,
    verdict,
)

__all__ = [
    "FATAL_PATTERNS",
    "MASK",
    "MISSING_COMMAND",
    "OUTPUTS",
    "PARSERS",
    "PRESETS",
    "RATE_LIMIT_PATTERNS",
    "RECOVER_AFTER",
    "RESULT_CHARS",
    "Activity",
    "Cooldown",
    "Outcome",
    "Preset",
    "Reading",
    "Reported",
    "Slots",
    "Verdict",
    "attempt_footer",
    "attempt_header",
    "attempt_output",
    "credit_slots",
    "cut_slots",
    "is_fatal_text",
    "is_mark",
    "masked",
    "meaningful_line",
    "next_cooldown",
    "read_log",
    "reported_trouble",
    "stall_check",
    "this_attempt",
    "verdict",
]
