"""The few things the kit reads from, or writes into, a compose file's text itself, where the
resolved model cannot tell (Compose v2 fills in every volume's name) or a YAML round trip would
lose the user's comments: whether a volume's name is pinned, and pinning it.
"""
from __future__ import annotations

import re


def volume_entry(text: str, key: str) -> tuple[list[str], int, str, re.Match] | None:
    """The lines, the index of `key`'s line under the top-level `volumes:` mapping, its
    indentation and its match (group 2: an empty value `{}`, null or ~; group 3: a comment);
    None when there is no such line, or more than one top-level `volumes:`."""
    lines = text.splitlines(keepends=True)
    top = [i for i, ln in enumerate(lines) if re.match(r"^volumes\s*:\s*(#.*)?$", ln)]
    if len(top) != 1:
        return None
    for i in range(top[0] + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line.startswith((" ", "\t", "#")):
            return None  # the mapping ended: no entry of that name
        match = re.match(rf"^(\s+)[\"']?{re.escape(key)}[\"']?\s*:\s*(\{{\s*\}}|null|~)?\s*"
                         r"(#.*)?$", line.rstrip("\n"))
        if match:
            return lines, i, match.group(1), match
    return None


def children(lines: list[str], at: int, indent: str) -> list[str]:
    """The lines that belong to the entry at `at` (deeper than its indentation)."""
    out = []
    for line in lines[at + 1:]:
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) <= len(indent):
            break
        out.append(line)
    return out


def volume_name_pinned(text: str, key: str) -> bool:
    """The entry of `key` gives its volume a `name:` of its own."""
    found = volume_entry(text, key)
    if not found:
        return False
    lines, at, indent, match = found
    return not match.group(2) and any(re.match(r"^\s+name\s*:", ln)
                                      for ln in children(lines, at, indent))


def pin_volume_name(text: str, key: str, name: str) -> str | None:
    """The compose text with `name: <name>` under the volume's entry in the top-level
    `volumes:` mapping (comments and all else kept: text, not a YAML round trip); None when the
    entry is not written in a form the kit can change safely."""
    found = volume_entry(text, key)
    if not found:
        return None
    lines, at, indent, match = found
    below = children(lines, at, indent)
    step = re.match(r"^(\s+)", below[0]).group(1) if below and not match.group(2) \
        else indent + "  "
    if match.group(2):
        lines[at] = f"{indent}{key}:" + (f"  {match.group(3)}" if match.group(3) else "") + "\n"
    lines.insert(at + 1, f"{step}name: {name}\n")
    return "".join(lines)
