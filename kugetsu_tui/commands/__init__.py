"""The bodies of `kugetsu`'s subcommands, one module per group; kugetsu_tui.cli parses
the command line, opens the Context and turns user mistakes into exit code 2.

Each command takes (Context, argparse.Namespace) and returns the exit code. Keep the
import path light: `add` must not load Textual or psutil.
"""
