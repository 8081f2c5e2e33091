"""Public helpers for testing apps built on hubbub."""
