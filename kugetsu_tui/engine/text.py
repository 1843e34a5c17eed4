"""Text that came from outside (prompts, agent output, hooks, paths, config values) made safe
to show on a terminal. Owns the one rule for it; never used on JSON, which escapes by itself.

A terminal obeys escape sequences wherever they appear, so a prompt or an agent's output
could retitle the window, clear the screen or reorder text with bidi overrides. Everything
that prints or renders such text passes it through `printable` first.
"""

from __future__ import annotations

import re

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC (ESC ] ... BEL or ST),
# and two-character escapes. Removed whole, so no half of a sequence is left to show.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[\]PX^_].*?(?:\x07|\x1b\\|$)"  # OSC, DCS, SOS, PM, APC up to BEL or ST
    r"|\x1b[ -/]*[0-~]",  # other escapes (charset, keypad, RIS …)
    re.DOTALL,
)
# C1 controls as single code points: CSI (U+009B) and OSC (U+009D) are obeyed by some terminals.
_C1_SEQUENCE = re.compile(r"\x9b[0-?]*[ -/]*[@-~]|[\x90\x9d\x98\x9e\x9f].*?(?:\x07|\x9c|$)", re.DOTALL)
# Bidi embeddings, overrides and isolates: they reorder what is shown (the "Trojan Source" trick).
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_CONTROL = {c: None for c in range(0x20)} | {0x7F: None} | {c: None for c in range(0x80, 0xA0)}
_CONTROL.update({ord(c): None for c in _BIDI})
_KEEP_LINES = dict(_CONTROL)
del _KEEP_LINES[0x0A]
del _KEEP_LINES[0x09]


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_SHOWN = {code: _visible(code) for code in _CONTROL}
_SHOWN_KEEP_LINES = {code: shown for code, shown in _SHOWN.items() if code in _KEEP_LINES}


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with escape sequences removed and other control characters shown as `\\xNN`.

    With lines=True, newlines and tabs stay (a log, a multi-line prompt); otherwise a
    newline is shown as `\\x0a` too, so one value stays on one line.
    """
    if text.isprintable() and "\x1b" not in text:
        return text  # the common case, without a regex pass
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # bytes that were not UTF-8
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _C1_SEQUENCE.sub("", text)
    if lines:
        text = text.replace("\r\n", "\n")
    return text.translate(_SHOWN_KEEP_LINES if lines else _SHOWN)


def one_line(text: str) -> str:
    """`text` made printable and folded to one line: runs of whitespace become one space."""
    return " ".join(printable(text, lines=True).split())
