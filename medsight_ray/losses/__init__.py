"""Losses, one concept per module. Every docstring gives the formula, the shapes,
whether inputs are logits or probabilities, and that lower is better."""
