"""Stages, one module each, registered by (task, stage name)."""
