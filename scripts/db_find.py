#!/usr/bin/env python3
"""Find every PostgreSQL cluster on the engine, wherever it was left, and how to bring it back.

Looks at every volume Docker has (named, anonymous, dangling: a mount one level too high or too
low leaves the data in an anonymous volume, and `docker volume prune` removes exactly those) and
at the folders under this project's folder. For each cluster: PostgreSQL version, size, when
pg_control was last written, system identifier (equal: copies of one cluster), the containers
that use it, the project that made it, and `make db-migrate-volume FROM=...`, which copies it
into this project's active volume or folder (with a snapshot and a question first).

Reads only, through throwaway containers of the db image (no network, read-only mounts).

examples:
  make db-find
  make db-find JSON=1               the same facts as JSON on stdout
"""
from __future__ import annotations

import json
import sys

from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.find import find_clusters
from dbguard.kit import open_kit
from dbguard.messages import find_report


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, dry_run=False)
    ap.add_argument("--json", action="store_true", help="print the facts as JSON on stdout")
    args = ap.parse_args(argv)
    kit = open_kit(args, command="db-find")
    clusters, volumes = find_clusters(kit)
    if args.json:
        print(json.dumps({"project": kit.project.name, "active": kit.project.volume,
                          "clusters": [c.to_json() for c in clusters]}, indent=2))
    else:
        print(find_report(clusters, kit.project.name, kit.project.store_label or "(none)",
                          volumes), end="")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
