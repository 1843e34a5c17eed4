"""The dashboard's widgets, one feature per module."""
