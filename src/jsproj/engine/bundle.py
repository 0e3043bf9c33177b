"""Where the JavaScript engine lives, and its files in load order.

The engine is the ``js/lib`` folder of the repository; a wheel carries a copy
as ``jsproj/js/lib`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parents[1]  # the jsproj package folder


@cache
def lib_dir() -> Path:
    """The folder holding the engine's files and ``bundle.json``."""
    for candidate in (_HERE / "js" / "lib", _HERE.parents[1] / "js" / "lib"):
        if (candidate / "bundle.json").is_file():
            return candidate
    raise FileNotFoundError(f"the jsproj JavaScript engine is missing (looked in {_HERE / 'js'} and the source tree)")


@cache
def engine_files() -> tuple[tuple[str, str], ...]:
    """``(name, source)`` of every engine file, in the order hosts load them."""
    names = json.loads((lib_dir() / "bundle.json").read_text("utf-8"))
    return tuple((name, (lib_dir() / name).read_text("utf-8")) for name in names)


@cache
def database_bundle() -> tuple[str, str]:
    """The engine as one script for the in-database hosts, and its SHA-256.

    Evaluating it defines nothing global and yields a function of a realm
    (``js/lib/realm.js``): called with ``null`` in a fresh context it makes the
    context's realm and returns ``jsproj.host``, whose ``lockdown`` the host
    then calls once, before loading any projection file; called with
    ``host.realm`` it makes another engine (another store's) in that context.
    """
    parts = ["(function (realm) {\nvar jsproj = {realm: realm || null};\n"]
    for _, source in engine_files():
        parts.append(f"(function (jsproj) {{{source}\n}})(jsproj);\n")
    parts.append("return jsproj.host;\n})\n")
    bundle = "".join(parts)
    return bundle, hashlib.sha256(bundle.encode()).hexdigest()
