"""pytest plugin: hubbub fixtures (filled in by the testing issue)."""
