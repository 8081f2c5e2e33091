"""hubbub's own test tooling, kept out of the wheel (``hubbub.testing`` is for users).

- :mod:`tests.support.node`: a private RabbitMQ node (own ports, data and
  cookie) that a test may stop, restart or break.
- :mod:`tests.support.cluster`: a private cluster of such nodes.
- :mod:`tests.support.certificates`: a throwaway CA and certificates for TLS.
- :mod:`tests.support.process`: ``hubbub`` CLI child processes (health, signals).
- :mod:`tests.support.recording`: a handler that records what it ran to a file,
  for consumers in other processes (``tests.support.recording:record``).

Imported as ``tests.support`` from the repository root: pytest puts the root on
``sys.path`` (``pythonpath`` in pyproject.toml) and on the ``PYTHONPATH`` of the
child processes tests start (tests/conftest.py), ``python -m bench...`` runs
from the root.
"""
