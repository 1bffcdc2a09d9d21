"""`make kit-install`: the kit put into another repository, in a folder of its own, its make
targets wired into the host's Makefile without overriding or being overridden by the host's, its
Python requirements apart, the .gitignore lines added, and the project name Compose uses today
locked where plain `docker compose` sees it too. Every host file it changes is copied first to
<folder>/.originals/; run again, it changes nothing; with a dry run, nothing at all.
"""
from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Refusal, UsageError
from .settings import KIT_ROOT

# What a repository gets: the scripts, the make fragment, the requirements, the settings'
# documentation and the manual. Not the kit's own compose file, tests or fixture.
KIT_FILES = ("scripts", "dbguard.mk", "requirements.txt", ".env.example", "README.md")
MARKER = ".dbguard-kit"  # in the installed folder: this folder is the kit's
TARGETS = ("db-up", "db-down", "db-info", "db-migrate-volume", "db-dump", "db-restore",
           "db-backups", "db-prune", "db-snapshot", "db-snapshots", "db-rollback", "db-upgrade",
           "db-fixture", "db-seed", "db-shell", "db-logs")
BEGIN, END = "# >>> dbguard (make kit-install)", "# <<< dbguard"
FOLDER_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class Plan:
    """What the installer does, step by step, said before (dry run) or after doing it."""

    dest: Path
    folder: Path
    stamp: str = field(default_factory=lambda: time.strftime("%Y%m%d_%H%M%S"))
    done: list[str] = field(default_factory=list)
    dry_run: bool = False

    def keep_original(self, path: Path) -> None:
        """A copy of a host file before it is changed, under <folder>/.originals/."""
        if self.dry_run or not path.exists():
            return
        kept = self.folder / ".originals" / self.stamp / path.relative_to(self.dest)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, kept)

    def say(self, done: str, would: str) -> None:
        self.done.append(would if self.dry_run else done)

    def write(self, path: Path, text: str, done: str, would: str) -> None:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        self.say(done, would)
        if self.dry_run:
            return
        self.keep_original(path)
        tmp = path.with_name(f".{path.name}.dbguard-tmp")
        tmp.write_text(text, encoding="utf-8")
        if path.exists():
            shutil.copymode(path, tmp)
        tmp.replace(path)


def check_destination(dest: Path, folder_name: str, prefix: str) -> Path:
    if not dest.is_dir():
        raise UsageError(f"{dest} is not a folder", "Give DEST=path/to/your/repository")
    if not FOLDER_RE.match(folder_name) or ".." in folder_name.split("/"):
        raise UsageError(f"FOLDER={folder_name!r} is not a plain relative folder name",
                         "Use letters, digits, '.', '_', '-' and '/', e.g. FOLDER=tools/dbguard")
    if prefix and not PREFIX_RE.match(prefix):
        raise UsageError(f"PREFIX={prefix!r} is not a make-target prefix",
                         "Use lowercase letters, digits, '-' and '_', e.g. PREFIX=kit-")
    dest, kit = dest.resolve(), KIT_ROOT.resolve()
    folder = dest / folder_name
    if kit == folder or kit in folder.parents or folder in kit.parents or kit == dest:
        raise UsageError(f"{dest} is the kit itself (or holds it)",
                         "Give DEST the repository the kit should go into")
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise Refusal(f"{folder} exists and is not a dbguard kit",
                      "Choose another folder with FOLDER=name; nothing was changed")
    return folder


def copy_kit(plan: Plan) -> None:
    """The kit's files into the folder: new ones created, changed ones replaced (the old copy
    kept), equal ones left alone."""
    changed = []
    for name in KIT_FILES:
        src = KIT_ROOT / name
        files = [p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                 and p.suffix != ".pyc"] if src.is_dir() else [src]
        for f in sorted(files):
            target = plan.folder / f.relative_to(KIT_ROOT)
            if target.exists() and filecmp.cmp(f, target, shallow=False):
                continue
            changed.append(target)
            if plan.dry_run:
                continue
            if target.exists():
                plan.keep_original(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    if not plan.dry_run:
        (plan.folder / MARKER).write_text("dbguard kit: `make kit-install` put it here\n")
    if changed:
        plan.say(f"copied {len(changed)} kit file(s) into {plan.folder}",
                 f"would copy {len(changed)} kit file(s) into {plan.folder}")


def host_targets(dest: Path) -> set[str]:
    """Every target the host's make knows (its includes too), from make's own database."""
    if not any((dest / n).exists() for n in ("GNUmakefile", "makefile", "Makefile")):
        return set()
    out = subprocess.run(["make", "-pRrq", "-C", str(dest), "-f", makefile(dest).name, ":"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    names = set()
    for line in out.splitlines():
        match = re.match(r"^([A-Za-z0-9][^\s:=#]*):(?!=)", line)
        if match:
            names.add(match.group(1))
    return names


def makefile(dest: Path) -> Path:
    return next((dest / n for n in ("GNUmakefile", "makefile", "Makefile")
                 if (dest / n).exists()), dest / "Makefile")


def wire_makefile(plan: Plan, prefix: str) -> None:
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
        if current == "\n".join(block):
            return
        raise Refusal(f"{path} holds a dbguard block of another installation",
                      "Remove the lines between '# >>> dbguard' and '# <<< dbguard' and run "
                      "again; nothing was changed")
    ours = {prefix + t for t in TARGETS} | {"dbguard-help", "dbguard-deps"}
    clashes = sorted(ours & host_targets(plan.dest))
    if clashes:
        raise Refusal(f"{path.name} already has the target(s) {', '.join(clashes)}",
                      "Namespace the kit's targets with PREFIX=kit- (make kit-db-up ...), or "
                      "rename yours; nothing was changed")
    if not text:
        text = "# The repository's make targets.\n"
    verb = ("added to", "would add to") if path.exists() else ("created", "would create")
    what = f" {path.name}: include {relative}/dbguard.mk"
    plan.write(path, text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n", verb[0] + what,
               verb[1] + what)


def ignore_lines(plan: Plan) -> None:
    path = plan.dest / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    relative = plan.folder.relative_to(plan.dest).as_posix()
    lines = [f"/{relative}/{p}" for p in (".venv/", "backups/", ".originals/", ".env")]
    missing = [line for line in lines if line not in text.splitlines()]
    if not missing:
        return
    plan.write(path, (text.rstrip("\n") + "\n\n" if text.strip() else "")
               + "\n".join(["# dbguard: its environment, backups and kept originals", *missing])
               + "\n", f"added {len(missing)} line(s) to .gitignore",
               f"would add {len(missing)} line(s) to .gitignore")


def lock_text(compose_text: str, name: str) -> str:
    """The compose file with `name: <project>` as its first key, comments and all else kept
    (text, not a YAML round trip)."""
    lines = compose_text.splitlines(keepends=True)
    at = 0
    while at < len(lines) and (not lines[at].strip() or lines[at].lstrip().startswith("#")
                               or lines[at].startswith("---")):
        at += 1
    return "".join(lines[:at]) + f"name: {name}\n" + "".join(lines[at:])


def add_env_line(text: str, key: str, value: str) -> str:
    return (text.rstrip("\n") + "\n" if text.strip() else "") + f"{key}={value}\n"
