"""What git says of the project's folder: whether a data folder sits in a work tree (where
`git clean -fdx` deletes it), and, for worktrees, which checkouts of the repository there are.
Reads only; git missing or no repository is no error.
"""
from __future__ import annotations

import subprocess
from pathlib import Path


def git(*args: str, cwd: Path) -> str | None:
    """git's output, or None when git is missing or says no."""
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def cleaned_by_git(folder: Path) -> str | None:
    """The git command that deletes `folder` with everything in it, when it sits in a work
    tree untracked: `git clean -fdx` (it is ignored), or `git clean -fd` (it is not even
    ignored); None outside a work tree."""
    start = next((p for p in (folder, *folder.parents) if p.is_dir()), None)
    if start is None:
        return None
    top = git("rev-parse", "--show-toplevel", cwd=start)
    if not top:
        return None
    root = Path(top.strip())
    try:
        relative = folder.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    ignored = git("check-ignore", "-q", str(relative), cwd=root) is not None
    return "git clean -fdx" if ignored else "git clean -fd"
