"""A throwaway PostgreSQL cluster of a test's own: `initdb` in a temporary directory, on a free
loopback port, trust auth; stopped and deleted at the end whatever happens.

The shared server is never touched: the fault suite restarts this one. PostgreSQL refuses to run
as root, so as root (CI) the cluster belongs to the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port

SYSTEM_USER = "postgres"


@dataclasses.dataclass(frozen=True)
class Cluster:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *arguments: str) -> None:
        _run(["pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), *arguments])

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            # A test cluster: durability against an OS crash is not what is tested here.
            "-c fsync=off -c max_connections=100"
        )
        self.pg_ctl("start", "-w", "-t", "60", "-o", options)

    def restart(self) -> None:
        """A clean restart: every connection the hub holds is terminated (SQLSTATE 57P01)."""
        self.pg_ctl("restart", "-w", "-t", "60", "-m", "fast")

    def stop(self) -> None:
        self.pg_ctl("stop", "-w", "-t", "30", "-m", "immediate")


def available() -> bool:
    return all(shutil.which(tool) for tool in ("initdb", "pg_ctl"))


def _run(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", SYSTEM_USER, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603 - fixed tools


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="hub-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, SYSTEM_USER, SYSTEM_USER)
    cluster = Cluster(directory, free_port())
    try:
        _run(["initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
