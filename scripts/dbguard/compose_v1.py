"""Compose v1 (`docker-compose`, which has no JSON output): its `config` YAML read without a YAML
library, and reshaped like v2's JSON so the rest of the kit sees one model.
"""
from __future__ import annotations

import re

from .errors import Failure


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
    """Logical lines: a scalar folded over several physical lines is joined back into one."""
    lines: list[dict] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        prev = lines[-1] if lines else None
        if prev and prev["open"] and indent > prev["owner"]:
            if prev["quote"] == '"' and prev["text"].endswith("\\"):
                prev["text"] = prev["text"][:-1] + stripped
            else:
                prev["text"] += " " + stripped
            if prev["quote"]:
                value, quote = _value_part(prev["text"])
                prev["open"] = _still_open(value or "", quote)
            continue
        value, quote = _value_part(stripped)
        is_open = value is not None and (_still_open(value, quote) if quote else True)
        # A folded scalar continues on lines deeper than the key it belongs to; in "- key: v"
        # that key sits two columns right of the dash.
        owner = indent
        if _is_item({"text": stripped}):
            body = stripped[1:].lstrip()
            if _split_key(body)[0] is not None:
                owner = indent + len(stripped) - len(body)
        lines.append({"indent": indent, "owner": owner, "text": stripped, "open": is_open,
                      "quote": quote})
    return lines


def _is_item(line: dict) -> bool:
    return line["text"] == "-" or line["text"].startswith("- ")


def _value_part(text: str) -> tuple[str | None, str]:
    body = text[1:].lstrip() if text == "-" or text.startswith("- ") else text
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
            return _scalar(text[:end + 1]), text[end + 2:].strip()
        return None, None
    match = re.match(r"^([^\s'\"{\[][^:]*?|[^:\s]+?):(?:\s+(.*)|)$", text)
    if match:
        return match.group(1), (match.group(2) or "").strip()
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
    text = text.strip()
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
        rest = lines[i]["text"][1:].lstrip()
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
