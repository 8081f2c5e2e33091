"""Producers: publish events to the hub with broker confirms."""

from hubbub.producers.publisher import OutgoingEvent, Publisher

__all__ = ["OutgoingEvent", "Publisher"]
