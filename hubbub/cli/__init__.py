"""The ``hubbub`` command line."""
