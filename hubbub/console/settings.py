"""What the console is allowed to do and who may use it (pure, validated up front).

Precedence: defaults, then environment (``HUBBUB_CONSOLE_*``), then the
command line. Credentials come from the environment only, never from the
command line (which other users of the machine can read in ``ps``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from hubbub.errors import ConfigurationError

TOKEN_ENV = "HUBBUB_CONSOLE_TOKEN"  # noqa: S105 - a variable's name
USER_ENV = "HUBBUB_CONSOLE_USER"
PASSWORD_ENV = "HUBBUB_CONSOLE_PASSWORD"  # noqa: S105 - a variable's name
SECRET_ENV = "HUBBUB_CONSOLE_SECRET"  # noqa: S105 - a variable's name
#: Shortest token or password accepted: a guessable one is no protection.
MIN_SECRET = 12


@dataclass(frozen=True, slots=True)
class Auth:
    """How operators prove who they are: a shared token, or a user and password."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def kind(self) -> str:
        return "token" if self.token else "password"


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """Everything the web app needs besides the admin API."""

    auth: Auth | None = None
    read_only: bool = False
    #: Key signing the session cookies; random per process unless given
    #: (give one to run several replicas behind one address).
    secret: bytes = b""
    #: Dead letters per page.
    page_size: int = 50
    #: Seconds between two refreshes of the overview.
    refresh: float = 5.0


def auth_from_env(env: Mapping[str, str]) -> Auth | None:
    """The credentials configured in ``env``; every problem in them reported at once."""
    token = env.get(TOKEN_ENV) or None
    user = env.get(USER_ENV) or None
    password = env.get(PASSWORD_ENV) or None
    problems = []
    if token and (user or password):
        problems.append(f"set either {TOKEN_ENV} or {USER_ENV} and {PASSWORD_ENV}, not both")
    if bool(user) != bool(password):
        problems.append(f"{USER_ENV} and {PASSWORD_ENV} go together: set both")
    for name, value in ((TOKEN_ENV, token), (PASSWORD_ENV, password)):
        if value is not None and len(value) < MIN_SECRET:
            problems.append(f"{name} is too short: use at least {MIN_SECRET} characters")
    if problems:
        raise ConfigurationError("; ".join(problems))
    if token:
        return Auth(token=token)
    if user:
        return Auth(user=user, password=password)
    return None


def secret_from_env(env: Mapping[str, str]) -> bytes:
    """The session-signing key from ``HUBBUB_CONSOLE_SECRET`` (empty: a random one per process)."""
    secret = env.get(SECRET_ENV, "")
    if secret and len(secret) < 2 * MIN_SECRET:
        raise ConfigurationError(
            f"{SECRET_ENV} is too short: use at least {2 * MIN_SECRET} random characters "
            "(e.g. openssl rand -hex 32)"
        )
    return secret.encode()


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address.

    A name is resolved (``localhost`` usually is loopback; a name that also
    resolves to a public address is not). An unresolvable name is not.
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def loopback_host_header(host: str) -> bool:
    """True when an HTTP ``Host`` header names this machine by a loopback name.

    No DNS lookup: only ``localhost`` and loopback IP literals count. A console
    without a login serves only such requests, so a web page that rebinds its
    own name to 127.0.0.1 (DNS rebinding) cannot read or drive it.
    """
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in ("localhost", "localhost.") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: Auth | None) -> None:
    """Refuse to serve the console beyond this machine without authentication."""
    if auth is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to listen on {host} without authentication: anyone who reaches it "
            f"could replay and delete events. Set {TOKEN_ENV} (or {USER_ENV} and "
            f"{PASSWORD_ENV}), or listen on 127.0.0.1"
        )
