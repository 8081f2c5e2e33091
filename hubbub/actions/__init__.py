"""Built-in actions: handlers a topology file names by short name, no code needed.

``handler: webhook`` (:mod:`hubbub.actions.webhooks`), ``handler: republish``
(:mod:`hubbub.actions.republishing`) and ``handler: log``
(:mod:`hubbub.actions.logs`) become ``hubbub.actions:<name>``; each declares
what its ``settings:`` accept (:mod:`hubbub.topology.settings`). See
docs/actions.md.
"""

from __future__ import annotations

from hubbub.actions.logs import log_event as log
from hubbub.actions.republishing import republish
from hubbub.actions.webhooks import webhook

__all__ = ["log", "republish", "webhook"]
