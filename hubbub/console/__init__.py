"""``hubbub console``: a web console for operators, built on :mod:`hubbub.admin`.

The web layer holds no broker logic: every read and every action goes
through :class:`~hubbub.admin.Admin` (see :mod:`hubbub.console.service`).
Modules: :mod:`~hubbub.console.settings` (options, who may log in, where it
may listen), :mod:`~hubbub.console.security` (sessions, CSRF, headers),
:mod:`~hubbub.console.service` (the admin calls a page needs, off the event
loop), :mod:`~hubbub.console.views` and :mod:`~hubbub.console.graph` (pure
formatting), :mod:`~hubbub.console.app` (the routes: :mod:`~hubbub.console.pages`
read, :mod:`~hubbub.console.actions` act, :mod:`~hubbub.console.web` the guard
and rendering they share). See docs/console.md.
"""

from hubbub.console.app import create_app
from hubbub.console.settings import Auth, ConsoleSettings, auth_from_env, check_bind

__all__ = ["Auth", "ConsoleSettings", "auth_from_env", "check_bind", "create_app"]
