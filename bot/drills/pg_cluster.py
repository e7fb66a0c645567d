"""A throwaway PostgreSQL cluster, started from the installed server binaries: the tests' one
(``tests/conftest.py``) and `warden drill failover`'s.

``initdb`` into a temporary folder, ``pg_ctl start`` listening on a Unix socket only
(``listen_addresses=''``: no TCP port to collide with anything), fsync off (a test cluster
never has to survive a power cut), stopped and deleted at the end. PostgreSQL refuses to run as
root, so when the tests run as root the server runs as the ``postgres`` OS user, with the data and
socket folders handed to it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SERVER_USER = "postgres"


class ClusterUnavailable(RuntimeError):
    """No server binaries (or no user to run them as) on this machine."""


def find_bindir() -> Path | None:
    """The newest installed server's bin folder (the Debian/Ubuntu layout), or PG_BINDIR."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit) if (Path(explicit) / "initdb").exists() else None
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


@dataclass
class Cluster:
    bindir: Path
    root: Path  # data/ and sock/ live in it
    run_as: str | None  # OS user the server runs as (None: the current user)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def superuser(self) -> str:
        return self.run_as or pwd.getpwuid(os.getuid()).pw_name

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL over the Unix socket (the host is the folder, percent-encoded)."""
        return f"postgresql://{self.superuser}@{quote(str(self.socket_dir), safe='')}/{dbname}"

    def _cmd(self, *args: str) -> list[str]:
        if self.run_as is None:
            return list(args)
        return ["runuser", "-u", self.run_as, "--", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._cmd(*args), check=True, capture_output=True, text=True, timeout=120
        )

    def psql_create_db(self, name: str) -> str:
        """A fresh empty database on the cluster; its URL."""
        self.run(
            str(self.bindir / "createdb"), "-h", str(self.socket_dir), "-U", self.superuser, name
        )
        return self.url(name)

    def start(self) -> None:
        self.data.mkdir()
        self.socket_dir.mkdir()
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for p in (self.root, self.data, self.socket_dir):
                os.chown(p, entry.pw_uid, entry.pw_gid)
            # every process of the tests (running as root) reaches the socket; the folder
            # itself is private to the test run
            os.chmod(self.root, 0o755)
        self.run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.superuser,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        opts = (
            f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self.run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    if bindir is None:
        raise ClusterUnavailable(
            "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb; "
            "set PG_BINDIR or install the postgresql package)"
        )
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise ClusterUnavailable(
                f"running as root and there is no '{SERVER_USER}' OS user to run the server as "
                f"(create it: useradd --system {SERVER_USER})"
            ) from None
        if shutil.which("runuser") is None:
            raise ClusterUnavailable("running as root and runuser is missing")
        run_as = SERVER_USER
    root = Path(tempfile.mkdtemp(prefix="warden-pg-"))
    cluster = Cluster(bindir, root, run_as)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
