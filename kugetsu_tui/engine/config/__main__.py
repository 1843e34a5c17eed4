"""`python -m kugetsu_tui.engine.config --example` prints config/kugetsu.example.toml."""

import sys

from kugetsu_tui.engine.config.example import example

if sys.argv[1:] != ["--example"]:
    sys.exit("usage: python -m kugetsu_tui.engine.config --example")
sys.stdout.write(example())
