"""The paths a command is given: `~` expanded, and the files and folders it writes checked before any work."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def user_path(text: str) -> Path:
    """A path option's value, `~` expanded as in a suite's paths: `--results=~/runs` (a shell leaves the `~`
    after `=` alone) must not make a folder named `~` here."""
    return Path(text).expanduser()


# the options that name a file to write, per command: checked before the command does any work
OUTPUT_FILES = {
    "report": ("out",),
    "compare": ("json", "html"),
    "history": ("json",),
    "ab": ("json",),
    "estimate": ("json",),
    "recommend": ("json",),
}
# the options that name a folder to write into (made where missing)
OUTPUT_FOLDERS = {"report": ("reports",), "publish": ("out",), "ab": ("out",)}


def _not_writable(path: Path, option: str, folder: Path) -> str | None:
    """Why `path` cannot be written in `folder` (made where missing): the nearest folder that exists is a file,
    or cannot be written (a read-only file system, no permission), or None."""
    above = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if above is None:
        return None
    if not above.is_dir():
        return f"--{option} {path}: {above} is a file, not a folder"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"--{option} {path}: cannot write in {above} (read-only or no permission)"
    return None


def output_problem(args: argparse.Namespace) -> str | None:
    """Why an output option cannot be written (a folder for a file, a file for a folder, below a file, a
    read-only place), naming the option and path."""
    for name in OUTPUT_FILES.get(args.command, ()):
        path = getattr(args, name, None)
        if path is None:
            continue
        if path.is_dir():
            return f"--{name} {path} is a folder; give a file path"
        problem = _not_writable(path, name, path.parent)
        if problem:
            return problem
    for name in OUTPUT_FOLDERS.get(args.command, ()):
        path = getattr(args, name, None)
        if path is None or (args.command == "report" and getattr(args, "out", None) is not None):  # not used
            continue
        if path.exists() and not path.is_dir():
            return f"--{name} {path} is a file; give a folder"
        problem = _not_writable(path, name, path)
        if problem:
            return problem
    return None
