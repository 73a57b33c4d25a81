"""Training health: signals, rules that turn them into diagnoses, and the actions taken."""
