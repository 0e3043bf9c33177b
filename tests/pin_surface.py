"""Pin jsproj's JavaScript: the built-ins of every host, intersected, less what no projection may have.

    python tests/pin_surface.py          # read every host's built-ins and write js/lib/surface-pinned.js
    python tests/pin_surface.py --check  # say whether the file is what the hosts here give

Each host's surface is read by js/lib/surface.js itself (readSurface) in a
fresh context: mini-racer's V8 (the Python host and plpython3u), Node's V8
(a node:vm context), PLV8's V8 and PL/JS's QuickJS (in a throwaway
PostgreSQL with both). The pinned surface is what all four have, by object
and property, without POLICY (docs/javascript.md says why each goes);
REMOVED_SURFACE is what some host has of those objects and jsproj's
JavaScript has not, which loading a file that uses one names (js/lib/scan.js). tests/engine/test_surface.py checks each host against
the file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SURFACE_JS = ROOT / "js" / "lib" / "surface.js"
PINNED = ROOT / "js" / "lib" / "surface-pinned.js"
#: Globals of the hosts themselves (a language's object, mini-racer's timers, PLV8's log levels), not built-ins.
HOST_GLOBALS = ["plv8", "pljs", "setTimeout", "clearTimeout", "__timer_manager", "surface_read", "DEBUG", "DEBUG1",
                "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "LOG", "INFO", "NOTICE", "WARNING", "ERROR"]  # fmt: skip
#: What all hosts have and jsproj's JavaScript does not: path -> keys (docs/javascript.md, "What is left out").
POLICY: dict[str, list[str]] = {
    # Locale-sensitive formatting: each host's ICU data (or none: QuickJS), so each host's text.
    "Number.prototype": ["toLocaleString"],
    "Date.prototype": ["toLocaleString", "toLocaleDateString", "toLocaleTimeString"],
    "Array.prototype": ["toLocaleString"],
    "String.prototype": ["toLocaleUpperCase", "toLocaleLowerCase"],
    # Annex B: recompiles a regular expression in place, with flags the literal syntax would refuse.
    "RegExp.prototype": ["compile"],
}


#: What jsproj's JavaScript has everywhere although some host lacks it: path -> {key: value}, which the lockdown
#: gives a host without it (js/lib/lockdown.js, ADDED). V8 takes Error.stackTraceLimit to capture stacks at all
#: (without it, no error says file:line); QuickJS captures its own: there the number is a frozen 10 that says so.
ADDITIONS: dict[str, dict[str, object]] = {"Error": {"stackTraceLimit": 10}}


#: The hosts whose built-ins are intersected, as the generated file says.
VERSIONS = "V8 14 (mini-racer), V8 11 (Node 20), V8 10 (PLV8 3.1) and QuickJS (PL/JS 1.0.5)"


def snippet(names: str) -> str:
    """JavaScript whose value is the JSON of {"pinned": the surface of GLOBALS, "all": of every global}."""
    source = SURFACE_JS.read_text("utf-8")
    return (
        "(function () { var jsproj = {}; (function (jsproj) {" + source + "\n})(jsproj);\n"
        f"var host = {json.dumps(HOST_GLOBALS)};\n"
        "var all = " + names + ".filter(function (n) { return host.indexOf(n) < 0; });\n"
        "return JSON.stringify({ pinned: jsproj.readSurface(globalThis), all: jsproj.readSurface(globalThis, all) });\n"
        "})()"
    )


GLOBAL_NAMES = "Object.getOwnPropertyNames(globalThis)"


def read_miniracer() -> dict[str, Any]:
    code = """
import json, sys
import os
from py_mini_racer import MiniRacer
print(MiniRacer().eval(sys.stdin.read()), flush=True)
os._exit(0)  # no V8 teardown at exit: it can hang
"""
    done = subprocess.run([sys.executable, "-c", code], input=snippet(GLOBAL_NAMES), capture_output=True, text=True,
                          check=True)  # fmt: skip
    return dict(json.loads(done.stdout))


def read_node() -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not on the PATH"
    code = "process.stdout.write(require('vm').runInNewContext(require('fs').readFileSync(0, 'utf8'), {}))"
    done = subprocess.run([node, "-e", code], input=snippet(GLOBAL_NAMES), capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def read_language(dsn: str, language: str) -> dict[str, Any]:
    """The surface of a fresh context of ``language`` (plv8, pljs), in a backend of its own."""
    import psycopg

    body = "return " + snippet(GLOBAL_NAMES) + ";"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create extension if not exists {language}")
        conn.execute(f"create or replace function pg_temp.surface_read() returns text language {language} as $js$"
                     f"{body}$js$")  # fmt: skip
        (text,) = conn.execute("select pg_temp.surface_read()").fetchone()
    return dict(json.loads(text))


def read_hosts(dsn: str) -> dict[str, dict[str, Any]]:
    """host name -> {"pinned": ..., "all": ...}."""
    return {
        "miniracer": read_miniracer(),
        "node": read_node(),
        "plv8": read_language(dsn, "plv8"),
        "pljs": read_language(dsn, "pljs"),
    }


def pin(hosts: dict[str, dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The pinned surface (path -> keys) and what some host has that jsproj's JavaScript has not, of the
    pinned objects: path -> keys (scan.js names a file's use of one)."""
    surfaces = [h["pinned"] for h in hosts.values()]
    paths = set.intersection(*(set(s) for s in surfaces))
    pinned = {}
    for path in sorted(paths):
        keys = set.intersection(*(set(s[path]) for s in surfaces)) - set(POLICY.get(path, []))
        pinned[path] = sorted(keys | set(ADDITIONS.get(path, {})))
    removed = {}
    for path in sorted(pinned):
        some = set.union(*(set(h["pinned"].get(path, [])) for h in hosts.values())) - set(pinned[path])
        names = sorted(key for key in some if key.isidentifier() and not key.startswith("__"))
        if names:
            removed[path] = names
    return pinned, removed


def render(pinned: dict[str, list[str]], removed: dict[str, list[str]], versions: str) -> str:
    lines = [
        "'use strict';",
        "// Generated by tests/pin_surface.py from the built-ins of " + versions + ":",
        "// do not edit. What each object of jsproj's JavaScript has (surface.js), and what",
        "// some host has of them that it has not (scan.js names a file's use of one).",
        "jsproj.PINNED_SURFACE = {",
    ]
    for path, keys in pinned.items():
        lines.append(f"  {json.dumps(path)}: {json.dumps(keys)},")
    lines[-1] = lines[-1].rstrip(",")
    lines += ["};", "jsproj.ADDED_SURFACE = " + json.dumps(ADDITIONS) + ";", "jsproj.REMOVED_SURFACE = {"]
    lines += [f"  {json.dumps(path)}: {json.dumps(keys)}," for path, keys in removed.items()]
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join([*lines, "};", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with js/lib/surface-pinned.js, write nothing")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from jsproj.tools.postgres_cluster import temporary_cluster

    cluster = temporary_cluster(prefix="jsproj-surface-")
    cluster.init(durable=False)
    cluster.start()
    try:
        hosts = read_hosts(cluster.dsn)
    finally:
        cluster.destroy()
    pinned, removed = pin(hosts)
    text = render(pinned, removed, VERSIONS)
    if args.check:
        same = PINNED.exists() and PINNED.read_text("utf-8") == text
        print("js/lib/surface-pinned.js is " + ("up to date" if same else "NOT what the hosts here give"))
        return 0 if same else 1
    PINNED.write_text(text, "utf-8")
    print(f"wrote {PINNED.relative_to(ROOT)}: {sum(map(len, pinned.values()))} properties of {len(pinned)} objects, "
          f"{sum(map(len, removed.values()))} removed")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
