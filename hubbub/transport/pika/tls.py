"""TLS for ``amqps://`` URLs: which CA, client certificate and key to use.

pika reads TLS settings from the URL (``?ssl_options={'ca_certs': '/ca.pem'}``),
which is awkward to quote in an environment variable, so hubbub also reads
file paths from the environment:

``HUBBUB_TLS_CA``
    CA bundle that signed the broker's certificate (default: the system CAs).
``HUBBUB_TLS_CERT`` and ``HUBBUB_TLS_KEY``
    client certificate and key, for brokers that verify peers (mutual TLS).
``HUBBUB_TLS_SERVER_NAME``
    the name in the broker's certificate, when it differs from the URL's host.

Precedence: ``ssl_options`` in the URL, else the environment, else the system
CAs. The broker's certificate and host name are always verified: there is
deliberately no switch to turn verification off.
"""

from __future__ import annotations

import os
import ssl

import pika

from hubbub.errors import ConfigurationError

#: Environment variables read for ``amqps://`` URLs.
CA_ENV, CERT_ENV, KEY_ENV, SERVER_NAME_ENV = (
    "HUBBUB_TLS_CA",
    "HUBBUB_TLS_CERT",
    "HUBBUB_TLS_KEY",
    "HUBBUB_TLS_SERVER_NAME",
)


def configure(params: pika.ConnectionParameters, *, url_has_ssl_options: bool) -> None:
    """Give ``params`` (from an ``amqps://`` URL) a verifying TLS context.

    Does nothing for plain ``amqp://`` URLs. Raises ConfigurationError when a
    file named by the environment cannot be loaded.
    """
    if params.ssl_options is None:
        return
    server_name = os.environ.get(SERVER_NAME_ENV) or params.host
    if url_has_ssl_options:
        context = params.ssl_options.context
        server_name = params.ssl_options.server_hostname or server_name
    else:
        context = context_from_env()
    params.ssl_options = pika.SSLOptions(context, server_hostname=server_name)


def context_from_env() -> ssl.SSLContext:
    """A client context verifying the broker against ``HUBBUB_TLS_CA`` (or the system CAs)."""
    ca, cert, key = (os.environ.get(name) or None for name in (CA_ENV, CERT_ENV, KEY_ENV))
    try:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the TLS files ({CA_ENV}={ca}, {CERT_ENV}={cert}, {KEY_ENV}={key}): {exc}"
        ) from exc
    if key and not cert:
        raise ConfigurationError(f"{KEY_ENV} is set but {CERT_ENV} is not: give both or neither")
    return context
