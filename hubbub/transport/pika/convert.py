"""hubbub's :class:`~hubbub.message.Message` and pika's ``BasicProperties``, both ways.

By position: :data:`~hubbub.message.PROPERTY_NAMES` is pika's own property
order (``tests/unit/test_message.py`` checks it), so a conversion is one
attribute read per property and one construction, nothing looked up by name
per message.
"""

from __future__ import annotations

from operator import attrgetter

import pika

from hubbub.message import PROPERTY_NAMES, Message, new_message

_properties_of = attrgetter(*PROPERTY_NAMES)


def to_pika(message: Message) -> pika.BasicProperties:
    """The pika properties of ``message`` (headers as a plain dict, as pika encodes them)."""
    values = list(_properties_of(message))
    headers = values[2]
    if headers is not None and not isinstance(headers, dict):
        values[2] = dict(headers)
    return pika.BasicProperties(*values)


def from_pika(properties: pika.BasicProperties, body: bytes) -> Message:
    """``body`` with ``properties`` as hubbub's message (the headers dict is kept, not copied)."""
    return new_message(body, *_properties_of(properties))
