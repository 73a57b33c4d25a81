"""Models: a timm backbone as a feature map, and the three task models on top of it."""
