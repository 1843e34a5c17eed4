from kugetsu_tui.cli import entry

entry()
