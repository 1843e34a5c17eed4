"""Modal screens: confirm, new task, task details, help."""
