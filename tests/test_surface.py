"""jsproj's JavaScript is pinned: what every host has, less what no projection may have (js/lib/surface.js).

The conformance case javascript-surface shows that projection code sees the
same built-ins in every host; here, that those are exactly the pinned ones,
and that the pinned file is what the hosts installed here give
(tests/pin_surface.py writes it: run it when a host changes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pin_surface
from jsproj.runtime.bundle import lib_dir

CASE = Path(__file__).parent / "conformance" / "javascript-surface" / "expected.json"


def pinned() -> dict[str, list[str]]:
    """js/lib/surface-pinned.js's PINNED_SURFACE, read as JSON."""
    text = (lib_dir() / "surface-pinned.js").read_text("utf-8")
    body = text[text.index("jsproj.PINNED_SURFACE = ") + len("jsproj.PINNED_SURFACE = ") : text.index("};") + 1]
    return dict(json.loads(body))


def test_the_pinned_surface_is_what_the_hosts_here_have(cluster) -> None:
    hosts = pin_surface.read_hosts(cluster.dsn)
    surface, removed = pin_surface.pin(hosts)
    written = pin_surface.render(surface, removed, pin_surface.VERSIONS)
    assert written == (lib_dir() / "surface-pinned.js").read_text("utf-8"), "run python tests/pin_surface.py"
    for host, read in hosts.items():
        for path, keys in surface.items():
            lacking = set(keys) - set(read["pinned"].get(path, [])) - set(pin_surface.ADDITIONS.get(path, {}))
            assert not lacking, f"{host} lacks {path}: {sorted(lacking)}"


def test_every_host_gives_projection_code_exactly_the_pinned_surface() -> None:
    """What projection code saw (the same in every host: the conformance case) is the pinned surface."""
    seen = json.loads(CASE.read_text("utf-8"))["aggregates"]["Surface"]
    want = pinned()
    assert seen["globals"] == want["globalThis"]
    symbols = {f"Symbol(Symbol.{name[2:]})": name for keys in want.values() for name in keys if name.startswith("@@")}
    names = {"unscopables": "Array.prototype[@@unscopables]"}
    compared = 0
    for line in seen["surface"]:
        path, _, keys = line.partition(": ")
        path = re.sub(r"\.prototype$", ".prototype", names.get(path, path))
        if path not in want:
            continue
        assert sorted(symbols.get(k, k) for k in keys.split(" ") if k) == want[path], path
        compared += 1
    assert compared >= 60, "the case saw every pinned object"
    assert seen["frozen"] == [True, True, True] and seen["thisInAFunction"] == "undefined"
