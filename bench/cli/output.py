"""What the command line prints: rich consoles for results (stdout) and messages (stderr)."""

from __future__ import annotations

from rich.console import Console

console = Console()
errors = Console(stderr=True)


def plain(message: str, to: Console = errors) -> None:
    """Print as is: no rich markup or highlighting (paths and labels may hold brackets), no wrapping."""
    to.print(message, markup=False, highlight=False, soft_wrap=True)
