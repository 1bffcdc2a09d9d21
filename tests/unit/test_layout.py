"""Where the server's cluster lands, worked out from the compose file and the image alone
(layout.py): the same table as tests/integration/test_layouts.py, where Compose itself decides
which layouts keep their data; here, which problem each gets and what it tells the user to
write."""
from pathlib import Path

import pytest

from dbguard.compose import project_from_model
from dbguard.docker import ImageInfo
from dbguard.layout import layout_problem

DATA, ROOT = "/var/lib/postgresql/data", "/var/lib/postgresql"
IMAGES = {15: ImageInfo("postgres:15", True, 15, DATA, (DATA,)),
          17: ImageInfo("postgres:17", True, 17, DATA, (DATA,)),
          18: ImageInfo("postgres:18", True, 18, ROOT + "/18/docker", (ROOT,))}


def named(target):
    return [{"type": "volume", "source": "pgdata", "target": target}]


LAYOUTS = [  # major, mounts, PGDATA, expected code (None: safe), fix that must be named
    (17, named(DATA), None, None, None),
    (17, named(DATA), DATA + "/pgdata", None, None),
    (17, named(ROOT), None, "PGDATA_NOT_ON_VOLUME", f"mount `pgdata:{DATA}` instead of "
                                                    f"`pgdata:{ROOT}`"),
    (17, named(ROOT), DATA + "/pgdata", "PGDATA_NOT_ON_VOLUME", f"mount `pgdata:{DATA}`"),
    (17, named(ROOT), ROOT + "/pgdata", None, None),
    (17, named(DATA + "/pgdata"), None, "PGDATA_NOT_ON_VOLUME",
     f"or set PGDATA={DATA}/pgdata in the service's environment"),
    (17, named(DATA + "/pgdata"), DATA + "/pgdata", None, None),
    (17, [{"type": "bind", "source": "./pg", "target": DATA}], None, None, None),
    (17, [], None, "PGDATA_NOT_ON_VOLUME", f"mount `pgdata:{DATA}`"),
    (17, [{"type": "volume", "target": DATA}], None, "PGDATA_NOT_ON_VOLUME",
     f"mount `pgdata:{DATA}`"),
    (17, [{"type": "tmpfs", "target": DATA}], None, "PGDATA_NOT_ON_VOLUME",
     f"mount `pgdata:{DATA}`"),
    (15, named(DATA), None, None, None),
    (15, named("/srv/pg"), "/srv/pg/data", None, None),
    (18, named(ROOT), None, None, None),
    (18, named(DATA), None, "PG18_MOUNT_PATH", f"in the compose file, mount `pgdata:{ROOT}`"),
    (18, named(DATA), DATA, None, None),
    (18, named(ROOT + "/18/docker"), None, None, None),
    (18, [{"type": "bind", "source": "./pg", "target": ROOT}], None, None, None),
    (18, named(ROOT + "/18/docker/base"), None, "PGDATA_NOT_ON_VOLUME",
     f"mount `pgdata:{ROOT}/18/docker`"),
]


@pytest.mark.parametrize("major, mounts, pgdata, code, fix", LAYOUTS)
def test_each_layout_lands_where_compose_puts_it(major, mounts, pgdata, code, fix):
    service = {"image": f"postgres:{major}", "volumes": mounts,
               **({"environment": {"PGDATA": pgdata}} if pgdata else {})}
    project = project_from_model({"services": {"db": service}, "volumes": {"pgdata": {}}},
                                 "proj", ".env", Path("/src/proj"), None)
    problem = layout_problem(project, IMAGES[major])
    if code is None:
        assert problem is None
    else:
        assert problem.code == code and problem.blocking
        assert any(f.startswith(fix) for f in problem.fix), problem.fix
