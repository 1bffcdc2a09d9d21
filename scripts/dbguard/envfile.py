"""Pointing a checkout's application at another database by changing its own env file, line by
line, keeping everything else as written: the variables that name the database (a value equal
to its name under a key that says DB or DATABASE), the database part of a PostgreSQL URL, and
the kit's DJANGO_DB_NAME (added when missing, so the kit's commands in that checkout use the
same database). Pure: text in, text out.
"""
from __future__ import annotations

import re
import urllib.parse

LINE = re.compile(r"^(?P<head>\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*)"
                  r"(?P<quote>['\"]?)(?P<value>.*?)(?P=quote)(?P<tail>\s*(?:#.*)?)$")
NAME_KEY = re.compile(r"(^|_)(DB|DATABASE)(_|$)")
NOT_NAME = re.compile(r"(USER|PASS|HOST|PORT|URL|URI|DSN|SCHEMA|ENGINE|SSL|TIMEOUT|POOL)")
URL_SCHEMES = ("postgres", "postgresql", "postgis", "pgsql")


def url_with_database(value: str, old: str, new: str) -> str | None:
    """The URL with its database replaced, when it is a PostgreSQL URL naming `old`."""
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.split("+")[0] not in URL_SCHEMES:
        return None
    if urllib.parse.unquote(parts.path.lstrip("/")) != old:
        return None
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(new)))


def point_at(text: str, old: str, new: str, kit_key: str = "DJANGO_DB_NAME"
             ) -> tuple[str, list[tuple[str, str, str]]]:
    """The env file's text with every database setting naming `old` changed to `new`, and the
    changes as (key, before, after). Passwords in URLs are not shown: a change to a URL is
    described by its key and the database names only."""
    lines, changes, has_kit_key = [], [], False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        match = LINE.match(body)
        if not match:
            lines.append(line)
            continue
        key, value = match["key"], match["value"]
        has_kit_key = has_kit_key or key == kit_key
        replaced = None
        if key == kit_key:
            replaced = new
        elif value == old and NAME_KEY.search(key.upper()) and not NOT_NAME.search(key.upper()):
            replaced = new
        else:
            replaced = url_with_database(value, old, new)
            if replaced is not None:
                changes.append((key, f".../{old}", f".../{new}"))
                lines.append(match["head"] + match["quote"] + replaced + match["quote"] +
                             match["tail"] + line[len(body):])
                continue
        if replaced is None or replaced == value:
            lines.append(line)
            continue
        changes.append((key, value, replaced))
        lines.append(match["head"] + match["quote"] + replaced + match["quote"] + match["tail"]
                     + line[len(body):])
    out = "".join(lines)
    if not has_kit_key:
        if out and not out.endswith("\n"):
            out += "\n"
        out += f"{kit_key}={new}\n"
        changes.append((kit_key, "(not set)", new))
    return out, changes
