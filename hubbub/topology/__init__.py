"""The wiring: a pure model of hubs, subscribers, patterns, delays and retries,
plus the one step (:func:`apply`) that declares it on the broker."""

from hubbub.topology.layout import Layout, layout
from hubbub.topology.loader import load, loads, resolve_handler
from hubbub.topology.model import RetryPolicy, Subscriber, Topology
from hubbub.topology.names import HubNames
from hubbub.topology.plan import Plan, plan
from hubbub.topology.sync import apply, make_plan

__all__ = [
    "HubNames",
    "Layout",
    "Plan",
    "RetryPolicy",
    "Subscriber",
    "Topology",
    "apply",
    "layout",
    "load",
    "loads",
    "make_plan",
    "plan",
    "resolve_handler",
]
