"""The Compose v1 reader gives back every value that v1's YAML emitter can write: generated
values (quotes, backslashes, `#`, colons, newlines, blank-line runs, tabs, non-ASCII, long words
that make the emitter fold lines) dumped with exactly v1's options, then read back."""
import random

import pytest
import yaml

from dbguard.compose_v1 import parse_yaml

PIECES = list("abcXYZ0189 -_:#'\"\\/.,{}[]&*!|>%@`?=~") + [
    "\n", "\n\n", "\t", "é", "ß", "→", "  ", "\u00a0", " #", "# ", ": ", "\\n", "''", "word" * 9]


def v1_dump(data) -> str:
    """What `docker-compose config` (1.29) prints for `data` (compose/config/serialize.py)."""
    return yaml.safe_dump(data, default_flow_style=False, indent=2, width=80,
                          allow_unicode=True)


def generated(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    values = []
    for _ in range(count):
        words = [("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12))))
                 for _ in range(rng.choice([1, 3, 12, 40]))]
        values.append(rng.choice([" ", "  ", ""]).join(words))
    return values


@pytest.mark.parametrize("seed", range(8))
def test_every_generated_value_reads_back_exactly(seed):
    for value in generated(seed, 250):
        doc = {"services": {"db": {"environment": {"A": value, "Z": "after"},
                                   "image": "postgres:15", "volumes": [value, "pgdata:/d"]}},
               "volumes": {"pgdata": {"name": value}}}
        text = v1_dump(doc)
        assert parse_yaml(text) == doc, text


@pytest.mark.parametrize("value", [
    "word " * 14 + "x #tail",  # folded so that the continuation line starts with '#'
    "line one\nline two\n\nafter a blank line",  # newlines written as blank lines
    "'" + "quoted words " * 8 + "'", "back\\slash " * 12 + "\\", "x\ty" * 30])
def test_the_values_that_used_to_be_cut_read_back(value):
    doc = {"services": {"db": {"environment": {"V": value}}}}
    text = v1_dump(doc)
    if value.endswith("#tail"):
        assert "\n        #tail'" in text, "the case this test is about"
    assert parse_yaml(text) == doc
