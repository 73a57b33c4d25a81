"""The shared fit loop that every stage plugs into, and the Ray Train driver."""
