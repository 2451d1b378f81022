"""Board targets, synthesis, flashing and the host runtime."""
