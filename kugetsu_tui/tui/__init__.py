"""The dashboard: a Textual face on the engine.

Everything it changes goes through `kugetsu_tui.engine.control.Control`, the same calls
the CLI makes; it never signals an agent itself. Importing this package loads Textual,
so the CLI imports it only when a dashboard is asked for.
"""
