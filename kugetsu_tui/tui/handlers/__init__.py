"""What the dashboard's actions do, one module per group (queue, cap, review, view).

The table that names the actions, their keys and where they apply is `tui/actions.py`;
each handler here takes the app and either changes what is shown or ends in one call to
the engine's `Control` (through `KugetsuApp.act`), the same call the CLI makes.
"""
