"""`make kit-install`: the kit put into another repository, in a folder of its own, its make
targets wired into the host's Makefile, its Python requirements apart, the .gitignore lines
added, the compose file found, and the data's volume name locked so that every Compose of the
team reads the same one. Everything is worked out and checked first (a plan, with every reason
to refuse at once); only then is anything written, each file atomically and copied first to
<folder>/.originals/, the kit's folder first and the Makefile's include line last, so an
interrupted install is completed by running it again. Run again, it changes nothing; with a dry
run, nothing at all.
"""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .compose_text import pin_volume_name, volume_name_pinned
from .errors import Failure
from .files import atomic_write
from .settings import KIT_ROOT

# What a repository gets: the scripts, the make fragment, the requirements, the settings'
# documentation and the manual. Not the kit's own compose file, tests or fixture.
KIT_FILES = ("scripts", "dbguard.mk", "requirements.txt", ".env.example", "README.md", "docs")
MARKER = ".dbguard-kit"  # in the installed folder: this folder is the kit's
STAGING = ".dbguard-install-"  # a copy on its way into place, beside the folder
TARGETS = ("db-up", "db-down", "db-info", "db-migrate-volume", "db-dump", "db-restore",
           "db-backups", "db-prune", "db-snapshot", "db-snapshots", "db-rollback", "db-upgrade",
           "db-history", "db-undo", "db-fixture", "db-seed", "db-shell", "db-logs")
KEPT_SUFFIX = "-before-dbguard"  # a host target the kit takes over keeps this name
BEGIN, END = "# >>> dbguard (make kit-install)", "# <<< dbguard"
FOLDER_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
COMPOSE_GLOBS = ("compose*.y*ml", "docker-compose*.y*ml", "*/compose*.y*ml",
                 "*/docker-compose*.y*ml")


@dataclass
class Change:
    """One file the install writes: its new text, what it says, and the original kept."""

    path: Path
    text: str
    says: str


@dataclass
class Plan:
    """What the installer will do, worked out before anything is written."""

    dest: Path
    folder: Path
    stamp: str = field(default_factory=lambda: time.strftime("%Y%m%d_%H%M%S"))
    copies: list[Path] = field(default_factory=list)     # kit files new or changed
    changes: list[Change] = field(default_factory=list)  # host files, in the order written
    notes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)  # stagings of killed runs

    def lines(self, dry_run: bool) -> list[str]:
        """What it does (or would do); empty when there is nothing to do."""
        would = "would " if dry_run else ""
        out = [f"{would}remove {p.name} (an interrupted install's copy)" for p in self.leftovers]
        if self.copies:
            out.append(f"{would}copy {len(self.copies)} kit file(s) into {self.folder}")
        return out + [f"{would}{c.says}" for c in self.changes]


def check_destination(dest: Path, folder_name: str, prefix: str) -> tuple[Path, list[str]]:
    reasons = []
    if not dest.is_dir():
        return dest / folder_name, [f"{dest} is not a folder (give DEST=path/to/your/repo)"]
    if not FOLDER_RE.match(folder_name) or ".." in folder_name.split("/"):
        reasons.append(f"FOLDER={folder_name!r} is not a plain relative folder name (letters, "
                       "digits, '.', '_', '-' and '/', e.g. FOLDER=tools/dbguard)")
    if prefix and not PREFIX_RE.match(prefix):
        reasons.append(f"PREFIX={prefix!r} is not a make-target prefix (lowercase letters, "
                       "digits, '-' and '_', e.g. PREFIX=kit-)")
    dest, kit = dest.resolve(), KIT_ROOT.resolve()
    folder = dest / folder_name
    if kit == folder or kit in folder.parents or folder in kit.parents or kit == dest:
        reasons.append(f"{dest} is the kit itself (or holds it); give DEST the repository "
                       "the kit should go into")
    elif folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists() \
            and not only_kit_files(folder):
        reasons.append(f"{folder} exists and is not a dbguard kit (choose another folder "
                       "with FOLDER=name)")
    if not os.access(dest, os.W_OK):
        reasons.append(f"{dest} cannot be written (read-only, or not yours)")
    return folder, reasons


def kit_files() -> list[Path]:
    files = []
    for name in KIT_FILES:
        src = KIT_ROOT / name
        if src.is_dir():
            files += [p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and p.suffix != ".pyc"]
        elif src.exists():
            files.append(src)
    return sorted(files)


def only_kit_files(folder: Path) -> bool:
    """A folder an older installer left half copied: nothing in it but the kit's own files."""
    ours = {p.relative_to(KIT_ROOT) for p in kit_files()}
    theirs = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()
              and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return bool(theirs) and all(p in ours for p in theirs)


def plan_copy(plan: Plan) -> None:
    plan.leftovers = sorted(plan.folder.parent.glob(f"{STAGING}*"))
    for f in kit_files():
        target = plan.folder / f.relative_to(KIT_ROOT)
        if not (target.exists() and filecmp.cmp(f, target, shallow=False)):
            plan.copies.append(f)


def copy_kit(plan: Plan) -> None:
    """A new kit is copied into a staging folder beside its place and renamed into it (a kill
    leaves only the staging folder, which the next run removes); an installed kit has its
    changed files replaced one by one, each atomically, the old ones kept in .originals/."""
    for leftover in plan.leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    if not plan.folder.exists() or not any(plan.folder.iterdir()):
        staging = plan.folder.parent / f"{STAGING}{os.getpid()}"
        for f in kit_files():
            target = staging / f.relative_to(KIT_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        (staging / MARKER).write_text("dbguard kit: `make kit-install` put it here\n")
        if plan.folder.exists():
            plan.folder.rmdir()
        plan.folder.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(plan.folder)
        return
    for f in plan.copies:
        target = plan.folder / f.relative_to(KIT_ROOT)
        keep_original(plan, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, f.read_bytes())
        shutil.copymode(f, target)
    if not (plan.folder / MARKER).exists():
        (plan.folder / MARKER).write_text("dbguard kit: `make kit-install` put it here\n")


def keep_original(plan: Plan, path: Path) -> None:
    """A copy of a file before it is changed, under <folder>/.originals/<time>/."""
    if not path.exists():
        return
    where = path.relative_to(plan.dest) if plan.dest in path.parents else Path(path.name)
    kept = plan.folder / ".originals" / plan.stamp / where
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, kept)


# --- the Makefile ------------------------------------------------------------------------------

def makefile(dest: Path) -> Path:
    return next((dest / n for n in ("GNUmakefile", "makefile", "Makefile")
                 if (dest / n).exists()), dest / "Makefile")


def make_database(dest: Path, path: Path) -> tuple[int, str, str]:
    # A target of no consequence, defined on the command line: only the Makefile's own errors
    # reach stderr.
    r = subprocess.run(["make", "-pRrq", "-C", str(dest), "-f", path.name,
                        "--eval=.dbguard-probe:", ".dbguard-probe"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def host_targets(out: str) -> set[str]:
    """Every target the host's make knows (its includes too), from make's own database."""
    names = set()
    for line in out.splitlines():
        match = re.match(r"^([A-Za-z0-9][^\s:=#]*):(?!=)", line)
        if match:
            names.add(match.group(1))
    return names


def plan_makefile(plan: Plan, prefix: str, takeover: bool) -> str:
    """The Makefile's change (the include line, and the host's own targets renamed when the kit
    takes them over); the returned text names which `make db-up` the team types."""
    path = makefile(plan.dest)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    relative = plan.folder.relative_to(plan.dest).as_posix()
    block = [BEGIN, f"# dbguard's database targets ({relative}/README.md); `make dbguard-help` "
             "lists them."]
    if prefix:
        block.append(f"DBGUARD_PREFIX := {prefix}")
    block += [f"include {relative}/dbguard.mk", END]
    if BEGIN in text:
        current = text[text.index(BEGIN):text.index(END) + len(END)] if END in text else ""
        if current != "\n".join(block):
            plan.refusals.append(f"{path.name} holds a dbguard block of another installation "
                                 "(remove the lines between '# >>> dbguard' and '# <<< dbguard')")
        return f"make {prefix}db-up"
    clashes = []
    if path.exists():
        code, out, err = make_database(plan.dest, path)
        errors = [ln for ln in err.splitlines() if "***" in ln]
        if errors:
            plan.refusals.append(f"{path.name} has an error make reports ({errors[0].strip()}); "
                                 "fix it first")
            return ""
        ours = {prefix + t for t in TARGETS} | {"dbguard-help", "dbguard-deps"}
        clashes = sorted(ours & host_targets(out))
    if clashes and not takeover:
        plan.refusals.append(
            f"{path.name} already has the target(s) {', '.join(clashes)}: make would let one "
            "override the other. TAKEOVER=1 makes the kit's the ones the team types (yours "
            f"stay, renamed {clashes[0]}{KEPT_SUFFIX}, ...), or PREFIX=kit- installs the kit's "
            f"as kit-db-up ... (your `make {clashes[0]}` stays unguarded)")
        return ""
    renamed = []
    for target in clashes:
        pattern = re.compile(rf"^{re.escape(target)}(\s*)(:(?!=))", re.M)
        if len(pattern.findall(text)) != 1:
            plan.refusals.append(f"the target {target} is not defined once in {path.name} itself "
                                 "(an included makefile?), so the kit cannot take it over; "
                                 "use PREFIX=kit-")
            continue
        text = pattern.sub(rf"{target}{KEPT_SUFFIX}\1\2", text)
        text = re.sub(rf"^(\.PHONY:.*)\b{re.escape(target)}\b", rf"\1{target}{KEPT_SUFFIX}",
                      text, flags=re.M)
        renamed.append(target)
    if not text:
        text = "# The repository's make targets.\n"
    new = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
    verb = "add to" if path.exists() else "create"
    what = f"{verb} {path.name}: include {relative}/dbguard.mk"
    if renamed:
        what += (f"; the kit takes over {', '.join(renamed)} (yours renamed "
                 f"{', '.join(t + KEPT_SUFFIX for t in renamed)})")
    plan.changes.append(Change(path, new, what))
    return f"make {prefix}db-up"


# --- .gitignore ---------------------------------------------------------------------------------

def plan_gitignore(plan: Plan) -> None:
    path = plan.dest / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    relative = plan.folder.relative_to(plan.dest).as_posix()
    lines = [f"/{relative}/{p}" for p in (".venv/", "backups/", ".originals/", ".env")]
    missing = [line for line in lines if line not in text.splitlines()]
    if missing:
        plan.changes.insert(0, Change(
            path, (text.rstrip("\n") + "\n\n" if text.strip() else "")
            + "\n".join(["# dbguard: its environment, backups and kept originals", *missing])
            + "\n", f"add {len(missing)} line(s) to .gitignore"))


# --- the compose file and the lock, checked by every Compose of the machine -------------------

def available_composes(runner) -> dict:
    """The Composes this machine has: {"v2": ("docker", "compose"), "v1": ("docker-compose",)},
    as far as each answers."""
    found = {}
    for flavor, command in (("v2", ("docker", "compose")), ("v1", ("docker-compose",))):
        try:
            r = runner([*command, "version", "--short"], check=False, reads=True)
        except Failure:
            continue
        if r.returncode == 0 and r.stdout.strip():
            found[flavor] = command
    return found


def resolved(runner, command: tuple, dest: Path, files: list[Path]):
    """What one Compose reads from the files (v2's JSON model, or v1's YAML reshaped), or why
    it cannot read them."""
    import json

    from .compose_v1 import parse_yaml, v1_model

    argv = [*command, *[a for f in files for a in ("-f", str(f))], "--project-directory",
            str(files[0].parent)]
    v2 = command == ("docker", "compose")
    r = runner(argv + ["config"] + (["--format", "json"] if v2 else []), check=False,
               reads=True)
    if r.returncode != 0:
        lines = r.stderr.decode(errors="replace").strip().splitlines()
        return None, lines[-1] if lines else "no output"
    try:
        return (json.loads(r.stdout) if v2 else v1_model(parse_yaml(r.stdout.decode()))), None
    except (ValueError, Failure) as exc:
        return None, str(exc)


def compose_candidates(dest: Path, folder: Path) -> list[Path]:
    """Compose files in the repository (its root and one level down, not the kit's own)."""
    found = set()
    for pattern in COMPOSE_GLOBS:
        for path in dest.glob(pattern):
            if path.is_file() and folder not in path.parents and ".git" not in path.parts \
                    and "override" not in path.name:
                found.add(path)
    return sorted(found)


def plan_compose(plan: Plan, runner, given: str | None) -> list[Path]:
    """The compose files the kit will read: Compose's own (from the kit's folder upwards), or
    COMPOSE_FILE given, or the one file in the repository that runs PostgreSQL (written into
    the kit's .env as COMPOSE_FILE). [] with a refusal when it cannot tell."""
    from .compose import postgres_evidence
    from .settings import discover_project

    if given:
        files = [(plan.dest / f).resolve() for f in given.split(os.pathsep) if f]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            plan.refusals.append(f"COMPOSE_FILE names no file: {', '.join(missing)}")
            return []
    else:
        project_dir, files, _ = discover_project(plan.folder)
        if files and plan.dest in (project_dir, *project_dir.parents):
            return list(files)
        composes = available_composes(runner)
        command = composes.get("v2") or composes.get("v1")
        files = []
        for candidate in compose_candidates(plan.dest, plan.folder):
            model, _ = resolved(runner, command, plan.dest, [candidate]) if command \
                else (None, None)
            services = (model or {}).get("services") or {}
            if any(postgres_evidence(spec) for spec in services.values()):
                files.append(candidate)
        if not files:
            plan.notes.append(f"no compose file in {plan.dest} runs PostgreSQL yet: the data is "
                              "not locked. Once there is one, run `make kit-install` again "
                              "(COMPOSE_FILE= names it)")
            return []
        if len(files) > 1:
            plan.refusals.append(
                "several compose files run PostgreSQL: " + ", ".join(
                    str(f.relative_to(plan.dest)) for f in files)
                + "; name the one the kit guards with COMPOSE_FILE=<path>")
            return []
    env = plan.folder / ".env"
    text = env.read_text(encoding="utf-8") if env.exists() else ""
    relative = ":".join(os.path.relpath(f, plan.folder) for f in files)
    if not re.search(r"^COMPOSE_FILE=", text, re.M):
        plan.changes.append(Change(env, (text.rstrip("\n") + "\n" if text.strip() else "")
                                   + f"COMPOSE_FILE={relative}\n",
                                   f"write COMPOSE_FILE={relative} into {env} (the kit's own "
                                   "settings; plain Compose never reads them)"))
    return list(files)


def plan_lock(plan: Plan, runner, files: list[Path]) -> tuple | None:
    """How the data's volume name is locked so that every Compose of the machine reads the
    same one: a volume `name:` pinned in the compose file (Compose v1 and v2 both read it, and
    it is committed with the file). Returns what apply_lock must check, or None."""
    import dataclasses

    from .compose import Compose, load_project
    from .settings import load_settings

    composes = available_composes(runner)
    if not composes:
        plan.refusals.append("no Docker Compose answers here (docker compose, docker-compose)")
        return None
    settings = dataclasses.replace(load_settings(plan.folder), compose_files=tuple(files),
                                   compose_files_explicit=True, project_dir=files[0].parent)
    flavor = "v2" if "v2" in composes else "v1"
    version = runner([*composes[flavor], "version", "--short"], reads=True).stdout.decode()
    try:
        version = version.strip().lstrip("v")
        project = load_project(Compose(runner, settings, composes[flavor],
                                       v2=not version.startswith("1."), version=version))
    except Failure as exc:
        plan.refusals.append(f"Compose cannot read {files[0].name}: {exc.message}")
        return None
    if project.folder:
        plan.notes.append(f"the data is in the folder {project.store_label} (a bind mount): "
                          "its path comes from the compose file, not from the project name, "
                          "so there is nothing to lock")
        return None
    if project.pinned:
        plan.notes.append(f"the volume name {project.volume} is locked already")
        return None
    # Every named volume of the project, not only the database's: a backups volume beside it
    # would otherwise split off with a renamed directory just the same.
    model, _ = resolved(runner, composes[flavor], plan.dest, files)
    declared = sorted(((model or {}).get("volumes") or {}).items())
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    keys, where_pinned = [], {}
    for key, spec in declared:
        if spec.get("external") or any(volume_name_pinned(t, key) for t in texts.values()):
            continue
        name = f"{project.name}_{key}"
        where = next((f for f, t in texts.items() if pin_volume_name(t, key, name)), None)
        if where is None:
            if key == project.volume_key:
                plan.refusals.append(
                    f"the volume {key!r} is not declared in a form the kit can change safely; "
                    f"lock it yourself: `name: {name}` under it in `volumes:` (both Compose "
                    f"versions read that), or COMPOSE_PROJECT_NAME={project.name} in .env")
                return None
            continue
        texts[where] = pin_volume_name(texts[where], key, name)
        keys.append((key, name))
        where_pinned.setdefault(where, []).append(f"`{key}: name: {name}`")
    if not keys:
        return None
    for path, pins in where_pinned.items():
        plan.changes.append(Change(path, texts[path], f"lock the volumes' names in {path.name}:"
                                                      f" {', '.join(pins)} (read by every "
                                                      f"Compose here: "
                                                      f"{', '.join(sorted(composes))})"))
    plan.notes.append("the project name itself still follows the folder: after a rename Compose "
                      "makes new containers and networks (a fixed container_name then conflicts "
                      "with the old container until `docker compose down` in the old folder) "
                      "while the data stays in the same volumes; COMPOSE_PROJECT_NAME in a "
                      "committed .env would lock the name too")
    return list(where_pinned), keys, composes, files


def check_lock(plan: Plan, runner, lock: tuple) -> None:
    """After the lock is written: every Compose of the machine reads the files, and to the
    same volume names; otherwise they are put back as they were and the install stops."""
    paths, keys, composes, files = lock
    for flavor, command in composes.items():
        model, why = resolved(runner, command, plan.dest, files)
        volumes = (model or {}).get("volumes") or {}
        wrong = [k for k, name in keys if (volumes.get(k) or {}).get("name") != name]
        if model is None or wrong:
            for path in paths:
                original = plan.folder / ".originals" / plan.stamp / path.relative_to(plan.dest)
                if original.exists():
                    atomic_write(path, original.read_bytes())
            raise Failure(f"Compose {flavor} does not read the locked compose file as meant "
                          f"({why or 'other volume names'}); it was put back as it was",
                          "Lock it yourself (`name:` under each volume in `volumes:`, or "
                          "COMPOSE_PROJECT_NAME in .env); the rest of the install stands")


def plan_install(dest: Path, folder_name: str, prefix: str, takeover: bool,
                 compose_file: str | None, runner) -> tuple[Plan, tuple | None, str]:
    """Everything the install will do, and every reason it will not, before anything is
    written; what apply must check of the lock; and which `make db-up` the team types."""
    folder, reasons = check_destination(dest, folder_name, prefix)
    plan = Plan(dest.resolve() if dest.is_dir() else dest, folder, refusals=reasons)
    if reasons:
        return plan, None, ""
    plan_copy(plan)
    plan_gitignore(plan)
    files = plan_compose(plan, runner, compose_file)
    lock = plan_lock(plan, runner, files) if files and not plan.refusals else None
    typed = plan_makefile(plan, prefix, takeover)  # last: the include makes the kit active
    for change in plan.changes:
        if change.path.exists() and not os.access(change.path, os.W_OK):
            plan.refusals.append(f"{change.path} cannot be written")
    return plan, lock, typed


def apply(plan: Plan, runner, lock: tuple | None) -> None:
    """Writes the plan: the kit's folder first, the host's files each atomically (the original
    kept first), the lock checked by every Compose, the Makefile's include last."""
    try:
        copy_kit(plan)
        pending = set(lock[0]) if lock else set()
        for change in plan.changes:
            keep_original(plan, change.path)
            atomic_write(change.path, change.text.encode())
            if change.path in pending:
                pending.discard(change.path)
                if not pending:  # checked before the Makefile's include makes the kit active
                    check_lock(plan, runner, lock)
    except OSError as exc:
        raise Failure(f"cannot write {exc.filename or plan.dest} ({exc.strerror or exc})",
                      "Make the repository writable and run again; what was written so far is "
                      "completed by the next run") from None
