"""Throwaway TLS certificates for tests of ``amqps://`` (made with the openssl CLI).

:func:`make` writes a CA and a server certificate it signed, valid for
``localhost`` and ``127.0.0.1``, good for one day. Give the server files to
a :class:`~tests.support.node.RabbitNode` with :func:`rabbit_config` and the
CA to clients with ``HUBBUB_TLS_CA``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from hubbub.errors import HubbubError


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make(directory: Path) -> Certificates:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=hubbub test CA",
        "-keyout",
        ca_key,
        "-out",
        ca,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        key,
        "-out",
        csr,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        ext,
        "-out",
        cert,
    )
    return Certificates(ca, cert, key)


def rabbit_config(certs: Certificates, port: int) -> list[str]:
    """rabbitmq.conf lines for a TLS listener on 127.0.0.1:``port``."""
    return [
        f"listeners.ssl.local = 127.0.0.1:{port}",
        f"ssl_options.cacertfile = {certs.ca}",
        f"ssl_options.certfile = {certs.cert}",
        f"ssl_options.keyfile = {certs.key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ]


def _openssl(*args: str | Path) -> None:
    try:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise HubbubError(f"openssl failed making test certificates: {exc}") from exc
