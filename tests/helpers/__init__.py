"""What tests share: the harness (harness.py), the dashboard's harness and screen readers
(tui.py), the deterministic board for snapshots (snapshots.py). Fixtures stay in conftest.py."""
