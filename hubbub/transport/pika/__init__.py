"""The RabbitMQ transport on pika: the only package of hubbub that imports pika."""
