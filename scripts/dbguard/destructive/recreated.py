"""Undoing a side effect of looking: Docker creates a missing named volume when a container
mounts it, so a look-inside container that started just after someone removed a volume made
it again, empty. Only volumes the caller found re-made that way come here."""
from __future__ import annotations

from ..kit import Kit


def remove_recreated(kit: Kit, names: list[str]) -> None:
    """Removes them again, without -f: Docker refuses any that a container started using
    meanwhile. A read in the dry-run sense: it puts back what the look itself changed."""
    if names:
        kit.runner(["docker", "volume", "rm", *names], reads=True, check=False)
