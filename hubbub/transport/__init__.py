"""The transport seam: how hubbub reaches a broker, behind small protocols.

Everything above this package (producers, consumers, topology, admin, the
test hubs) speaks :mod:`hubbub.message` and these protocols; each transport
(:mod:`hubbub.transport.pika` for RabbitMQ, an in-memory one for tests)
converts at its own edge. Only :mod:`hubbub.transport.pika` imports pika.
"""
