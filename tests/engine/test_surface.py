"""jsproj's JavaScript is pinned: what every host has, less what no projection may have (js/lib/surface.js).

The conformance case javascript-surface shows that projection code sees the
same built-ins in every host; here, that those are exactly the pinned ones,
and that the pinned file is what the hosts installed here give
(tests/pin_surface.py writes it: run it when a host changes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pin_surface
from jsproj.engine.bundle import lib_dir

CASE = Path(__file__).resolve().parents[1] / "conformance" / "javascript-surface" / "expected.json"


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


PROTECTORS = """
import json, os, sys
from py_mini_racer import MiniRacer, init_mini_racer
from jsproj.engine.bundle import engine_files
from jsproj.engine.worker import V8_FLAGS
init_mini_racer(flags=(*V8_FLAGS, "--allow-natives-syntax"), ignore_duplicate_init=True)
racer = MiniRacer()
racer.eval("globalThis.jsproj = {};")
for name, source in engine_files():
    racer.eval(f"(function (jsproj) {{{source}\\n}})(globalThis.jsproj);")
locked = racer.eval("(function (jsproj) { delete globalThis.jsproj; "
                    "return jsproj.host.lockdown(JSON.stringify({ops: ['route']})); })(globalThis.jsproj)")
assert json.loads(str(locked)) == {"ok": True}, locked
names = sys.argv[1:]
print(json.dumps({name: racer.eval(f"%{name}()") for name in names}), flush=True)
os._exit(0)  # no V8 teardown at exit: it can hang
"""


def test_the_lockdown_leaves_v8s_fast_paths_on() -> None:
    """V8 turns a fast path off for good when what it guards changes (an array's `constructor`, an
    iterator's @@iterator or `next`): array built-ins ran six times slower, for-of three times. The
    lockdown moves none of those. (RegExp's is off: a frozen RegExp.prototype turns V8's fast path for
    regular expressions off whatever jsproj does, docs/javascript.md.)"""
    names = ["ArraySpeciesProtector", "ArrayIteratorProtector", "MapIteratorProtector", "SetIteratorProtector",
             "StringIteratorProtector", "IsConcatSpreadableProtector", "TypedArraySpeciesProtector",
             "PromiseSpeciesProtector", "NoElementsProtector"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", PROTECTORS, *names], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == dict.fromkeys(names, True)
