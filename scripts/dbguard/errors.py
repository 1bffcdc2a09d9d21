"""The kit's exit codes and its three kinds of expected failure. Every script maps them to one
`ERROR:` line and an exit code (cli.entrypoint); anything else is a bug and keeps its traceback."""
from __future__ import annotations

from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class Failure(Exception):
    """An expected failure: one `ERROR:` line that ends with the next step, exit 1."""

    code = EXIT_FAILED

    def __init__(self, message: str, next_step: str, details: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.details = list(details)

    def line(self) -> str:
        return f"ERROR: {self.message}. {self.next_step}"


class Refusal(Failure):
    """A safety check said no: nothing was changed, exit 3."""

    code = EXIT_REFUSED


class UsageError(Failure):
    """The command line or the configuration is wrong, exit 2."""

    code = EXIT_USAGE


def refusal(doing: str, reasons: Sequence[str], next_step: str = "Nothing was changed"
            ) -> Refusal:
    """Every reason to refuse, in one format: one reason is said in the ERROR line itself;
    several are listed above it, one per line."""
    if len(reasons) == 1:
        return Refusal(f"refusing to {doing}: {reasons[0]}", next_step)
    return Refusal(f"refusing to {doing}, for the {len(reasons)} reasons above", next_step,
                   [f"Refusing to {doing}:"] + [f"  - {r}" for r in reasons])
