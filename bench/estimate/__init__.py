"""Memory estimates on the meta device: one run (model), a whole suite."""
