"""Volumes Docker made as a side effect of the kit's own containers, removed again.

- Docker creates a missing named volume when a container mounts it, so a look-inside
  container that started just after someone removed a volume made it again, empty. Only
  volumes the caller found re-made that way come here.
- db-upgrade's throwaway servers keep their socket in an anonymous volume labelled with the
  project; one that no container uses any more is a killed run's leftover.
"""
from __future__ import annotations

from ..kit import Kit
from ..names import LABEL_SOCKET_OF
from .volume_rm import remove_volumes


def remove_recreated(kit: Kit, names: list[str]) -> None:
    """Removes them again, without -f: Docker refuses any that a container started using
    meanwhile. A read in the dry-run sense: it puts back what the look itself changed."""
    if names:
        kit.runner(["docker", "volume", "rm", *names], reads=True, check=False)


def remove_dangling_sockets(kit: Kit) -> None:
    """Socket volumes of this project's throwaway servers that no container uses any more: a
    run killed while the cluster dump read the socket leaves one when the server's container
    goes before the dump's (Docker keeps a volume still in use)."""
    names = kit.runner(["docker", "volume", "ls", "-q", "--filter",
                        f"label={LABEL_SOCKET_OF}={kit.project.name}", "--filter",
                        "dangling=true"], reads=True).stdout.split()
    if names:
        remove_volumes(kit.runner, [n.decode() for n in names], check=False)
