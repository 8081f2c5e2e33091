"""The RabbitMQ transport on pika: the only package of hubbub that imports pika."""

#: The loggers pika logs to (quiet unless hubbub logs at DEBUG: :func:`hubbub.logs.setup`).
CLIENT_LOGGERS: tuple[str, ...] = ("pika",)
