"""db-protect: keeps the active volume from being removed by Docker's one-keystroke commands
(`docker compose down -v`, `docker volume rm`, `docker volume prune`, `docker system prune`)
with a keeper container (protect.py says how, and what still gets through); OFF=1 removes the
keeper. No data changes either way, so no journal and no question; the lock keeps it from
racing a command that recreates the volume.
"""
from __future__ import annotations

from ..errors import Refusal
from ..kit import Kit, kit_lock
from ..layout import layout_problem
from ..messages import info, success, warning
from ..names import keeper_name
from ..protect import protect, unprotect

GETS_THROUGH = ("removing the keeper itself (`docker rm -f {keeper}`), stopping it and then "
                "pruning, and deleting Docker's whole data (Docker Desktop's Clean / Purge data)")


def run(kit: Kit, off: bool) -> None:
    p = kit.project
    if p.folder:
        info(f"{p.store_label} is a folder: no Docker command removes it (`docker compose down "
             "-v` and the prunes remove volumes only), so there is nothing to protect. `git "
             "clean -fdx` can: db-info says whether it would (DATA_IN_WORK_TREE)")
        return
    layout = layout_problem(p, kit.image)
    if layout and not off:
        raise Refusal(f"{layout.message}; protecting {p.volume or 'it'} would not protect the "
                      "data", "Fix the mount first: " + "; ".join(layout.fix))
    volumes = kit.scan()
    active = kit.active(volumes)
    keeper = keeper_name(p.name, p.volume)
    with kit_lock(kit, "db-protect"):
        if off:
            if kit.runner.dry_run:
                info(f"dry run: would remove the keepers of {p.volume}: "
                     f"{', '.join(c.name for c in active.keepers) or 'none'}; nothing was "
                     "changed")
                return
            gone = unprotect(kit.runner, p.volume, active.used_by)
            if not gone:
                info(f"{p.volume} was not protected; nothing to do")
                return
            warning(f"{p.volume} is no longer protected: `docker compose down -v`, `docker "
                    "volume rm` and `docker volume prune -a` would remove it (make db-protect "
                    "protects it again)")
            return
        if not active.exists:
            raise Refusal(f"the volume {p.volume} does not exist yet, so there is nothing to "
                          "protect", "Run `make db-up` first (it creates it), then "
                          "`make db-protect`")
        if not kit.image.present:
            raise Refusal(f"the image {kit.image.ref} is not here for the keeper to run",
                          "Run `make db-up` first (it pulls or builds it)")
        if kit.runner.dry_run:
            info(f"dry run: would start the keeper {keeper} for {p.volume}; nothing was "
                 "changed")
            return
        already = protect(kit.runner, p.name, p.volume, kit.image)
        name = already.name if already else keeper
        success(f"{p.volume} is protected by the container {name} (running, restarted with "
                "Docker): `docker compose down -v`, `docker volume rm`, `docker volume prune "
                "[-a]` and `docker system prune [-a --volumes]` leave it, saying it is in use")
        info("what still gets through: " + GETS_THROUGH.format(keeper=name) +
             "; `make db-protect OFF=1` removes the protection")
