"""What the command line prints: rich consoles for results (stdout) and messages (stderr)."""

from __future__ import annotations

from rich.console import Console

# soft_wrap: a line is never broken at the console's width (80 columns when piped), so a CI log holds each
# problem (`file:line: ...`) on one line to grep; tables still fit the width
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def plain(message: str, to: Console = errors) -> None:
    """Print as is: no rich markup or highlighting (paths and labels may hold brackets), no wrapping."""
    to.print(message, markup=False, highlight=False, soft_wrap=True)
