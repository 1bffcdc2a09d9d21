"""Compose v1 (`docker-compose`, which has no JSON output): its `config` YAML read without a YAML
library, and reshaped like v2's JSON so the rest of the kit sees one model.
"""
from __future__ import annotations

import re

from .errors import Failure

WHITE = " \t"  # what YAML counts as white space


def v1_model(config: dict) -> dict:
    """docker-compose v1's `config` output, reshaped like v2's JSON (long-syntax mounts)."""
    services = {}
    for name, spec in (config.get("services") or {}).items():
        spec = dict(spec or {})
        mounts = []
        for m in spec.get("volumes") or []:
            if isinstance(m, dict):
                mounts.append(m)
                continue
            parts = str(m).split(":")
            if len(parts) == 1:
                mounts.append({"type": "volume", "source": "", "target": parts[0]})
                continue
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
            mounts.append({"type": kind, "source": source, "target": target})
        spec["volumes"] = mounts
        services[name] = spec
    volumes = {}
    for key, spec in (config.get("volumes") or {}).items():
        spec = dict(spec or {})
        ext = spec.get("external")
        if isinstance(ext, dict):  # v1's old form: external: {name: x}
            spec["name"], spec["external"] = ext.get("name") or spec.get("name") or key, True
        volumes[key] = spec
    return {"services": services, "volumes": volumes}


# A reader for the YAML that `docker-compose config` (v1) prints: PyYAML's block style with
# sorted keys, so mappings, sequences (also at their key's indentation), plain and quoted
# scalars folded over several lines, and `{}` / `[]`. The kit needs no YAML library for it.
def _yaml_lines(text: str) -> list[dict]:
    """Logical lines: a scalar folded over several physical lines is joined back into one, the
    way PyYAML's scanner reads it. While a scalar is open, blank lines and lines that start
    with `#` belong to it (a blank line there is a newline in the value)."""
    lines: list[dict] = []
    blanks = 0
    # YAML's line breaks and blanks, not Python's (which include NBSP, \x85, \u2028...).
    for raw in text.replace("\r\n", "\n").split("\n"):
        stripped = raw.strip(WHITE)
        indent = len(raw) - len(raw.lstrip(" "))
        prev = lines[-1] if lines else None
        if not stripped:
            blanks += 1
            continue
        if prev and prev["open"] and indent > prev["owner"]:
            prev["text"] = _fold(prev["text"], stripped, blanks, prev["quote"])
            blanks = 0
            if prev["quote"]:
                value, quote = _value_part(prev["text"])
                prev["open"] = _still_open(value or "", quote)
            continue
        blanks = 0
        if stripped.startswith("#") or stripped in ("---", "..."):
            continue
        value, quote = _value_part(stripped)
        is_open = value is not None and (_still_open(value, quote) if quote else True)
        # A folded scalar continues on lines deeper than the key it belongs to; in "- key: v"
        # that key sits two columns right of the dash.
        owner = indent
        if _is_item({"text": stripped}):
            body = stripped[1:].lstrip(WHITE)
            if _split_key(body)[0] is not None:
                owner = indent + len(stripped) - len(body)
        lines.append({"indent": indent, "owner": owner, "text": stripped, "open": is_open,
                      "quote": quote})
    return lines


def _fold(text: str, line: str, blanks: int, quote: str) -> str:
    """Joins a continuation line to a scalar: one line break reads as a space, a break
    followed by k blank lines as k newlines; in double quotes a break escaped with `\\`
    reads as nothing."""
    trailing = len(text) - len(text.rstrip("\\"))
    if quote == '"' and trailing % 2 == 1:
        return text[:-1] + "\n" * blanks + line
    return text + ("\n" * blanks if blanks else " ") + line


def _is_item(line: dict) -> bool:
    return line["text"] == "-" or line["text"].startswith("- ")


def _value_part(text: str) -> tuple[str | None, str]:
    body = text[1:].lstrip(WHITE) if text == "-" or text.startswith("- ") else text
    key, rest = _split_key(body)
    value = rest if key is not None else body
    if not value:
        return None, ""
    return value, value[0] if value[0] in "'\"" else ""


def _still_open(value: str, quote: str) -> bool:
    if not quote:
        return False
    return _quoted_end(value) is None


def _split_key(text: str) -> tuple[str | None, str | None]:
    if text[:1] in "'\"":
        end = _quoted_end(text)
        if end is not None and text[end + 1:end + 2] == ":" and \
                text[end + 2:end + 3] in ("", " "):
            return _scalar(text[:end + 1]), text[end + 2:].strip(WHITE)
        return None, None
    match = re.match(r"^([^ \t'\"{\[][^:\n]*?|[^: \t]+?):(?:[ \t]+(.*)|)$", text, re.S)
    if match:
        return match.group(1), (match.group(2) or "").strip(WHITE)
    return None, None


def _quoted_end(text: str) -> int | None:
    quote, i = text[0], 1
    while i < len(text):
        if quote == "'" and text[i] == "'":
            if text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if quote == '"' and text[i] == '"':
            return i
        i += 1
    return None


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "/": "/", "0": "\0", "r": "\r",
            " ": " ", "e": "\x1b", "a": "\a", "b": "\b"}


def _scalar(text: str):
    text = text.strip(WHITE)
    if text in ("{}",):
        return {}
    if text in ("[]",):
        return []
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        body, out, i = text[1:-1], [], 0
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body):
                code = body[i + 1]
                if code in "xuU":
                    width = {"x": 2, "u": 4, "U": 8}[code]
                    out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                    i += 2 + width
                    continue
                out.append(_ESCAPES.get(code, code))
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_yaml(text: str):
    lines = _yaml_lines(text)
    if not lines:
        return {}
    node, end = _block(lines, 0, lines[0]["indent"])
    if end != len(lines):
        raise Failure("cannot read the output of `docker-compose config` (line "
                      f"{end + 1}: {lines[end]['text'][:40]!r})",
                      "Use Compose v2 (DBGUARD_COMPOSE=v2) or report this with the compose file")
    return node


def _block(lines: list[dict], i: int, indent: int):
    return (_sequence if _is_item(lines[i]) else _mapping)(lines, i, indent)


def _mapping(lines: list[dict], i: int, indent: int):
    result = {}
    while i < len(lines) and lines[i]["indent"] == indent and not _is_item(lines[i]):
        key, rest = _split_key(lines[i]["text"])
        if key is None:
            break
        i += 1
        nested = i < len(lines) and (lines[i]["indent"] > indent or (
            lines[i]["indent"] == indent and _is_item(lines[i])))  # sequences sit at key level
        if rest:
            result[key] = _scalar(rest)
        elif nested:
            result[key], i = _block(lines, i, lines[i]["indent"])
        else:
            result[key] = None
    return result, i


def _sequence(lines: list[dict], i: int, indent: int):
    result = []
    while i < len(lines) and lines[i]["indent"] == indent and _is_item(lines[i]):
        rest = lines[i]["text"][1:].lstrip(WHITE)
        if not rest:
            item, i = _block(lines, i + 1, lines[i + 1]["indent"])
        elif _split_key(rest)[0] is not None:  # "- key: value" opens a mapping
            offset = len(lines[i]["text"]) - len(rest)
            lines[i] = dict(lines[i], indent=indent + offset, text=rest)
            item, i = _mapping(lines, i, indent + offset)
        else:
            item, i = _scalar(rest), i + 1
        result.append(item)
    return result, i
