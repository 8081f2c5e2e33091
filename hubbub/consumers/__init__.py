"""Consumers: run subscribers' handlers; ack, retry or dead-letter each event."""

from hubbub.consumers.worker import Worker

__all__ = ["Worker"]
