"""The example projects shipped inside the package (``jsproj/examples``), by name, wherever it is installed."""

from __future__ import annotations

from pathlib import Path

from jsproj import errors

_FOLDER = Path(__file__).resolve().parents[1] / "examples"


def example(name: str = "quest") -> Path:
    """The folder of a bundled example project: ``projections/``, ``events.jsonl`` and ``specs/``."""
    found = sorted(path.name for path in _FOLDER.iterdir() if path.is_dir() and not path.name.startswith("_"))
    if name not in found:
        raise errors.InputError(f"there is no bundled example {name!r} (there is: {', '.join(found)})")
    return _FOLDER / name
