"""Projection specs: given events, the views expected of them, checked in every host jsproj has.

A spec file (``specs/*.json``) holds one spec or a JSON array of them::

    {
      "name": "a party reaches Baerlon",
      "given": [{"id": "quest-1", "type": "Quest", "data": [{"$type": "QuestStarted", "members": ["Rand"]}]}],
      "expect": {
        "views": {"Party": {"quest-1": {"members": ["Rand"]}}},
        "aggregates": {"Traveled": {"traveled": 0}}
      }
    }

``given`` is a list of append messages or the name of an events file next to
the spec. Each projection named under ``expect`` must have exactly those
documents (projections not named are not checked); ``"error": {"projection",
"kind", "message"}`` expects the run to fail with a handler error whose
message contains ``message``. Missing stream ids, event ``$id`` s and
timestamps are assigned once (timestamps from ``now``, default
:data:`DEFAULT_NOW`), so every host sees the very same events.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsproj import errors
from jsproj.engine.events_file import as_messages
from jsproj.engine.projections import Projections, read_folder
from jsproj.errors import SpecFileError
from jsproj.tools.hosts import DEFAULT_NOW, Host, Job, NodeHost, PythonHost, StoreHost, schemas_in

__all__ = [
    "DEFAULT_NOW",
    "Spec",
    "SpecResult",
    "available_hosts",
    "compare",
    "load_specs",
    "read_spec_file",
    "run_specs",
]
EXPECT_KEYS = {"views", "aggregates", "error"}
SPEC_KEYS = {"name", "given", "expect", "now"}


@dataclass(frozen=True)
class Spec:
    """One spec: the events given and what is expected of them."""

    name: str
    file: Path
    given: list[dict[str, Any]]
    expect: dict[str, Any]
    now: str = DEFAULT_NOW


@dataclass
class SpecResult:
    """A spec's outcome in one host; ``problems`` are readable lines (a diff), empty when it passed."""

    spec: Spec
    host: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.name,
            "file": str(self.spec.file),
            "host": self.host,
            "passed": self.passed,
            "problems": self.problems,
        }


def load_specs(folder: str | os.PathLike[str]) -> list[Spec]:
    """Every spec in the ``*.json`` files of ``folder`` (sorted by file name), checked for format."""
    path = Path(folder)
    if not path.is_dir():
        raise SpecFileError(f"no such specs folder: {path}")
    specs: list[Spec] = []
    for file in sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file()):
        specs.extend(read_spec_file(file))
    if not specs:
        raise SpecFileError(f"no specs (*.json) in {path}")
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecFileError(f"{path}: two specs are named {duplicates[0]!r}")
    return specs


def event_types_seen(specs_folder: Path, events_folder: Path) -> set[str]:
    """The event types the project's specs give and its events files (``*.jsonl`` in ``events_folder``) hold:
    what its handlers are known to meet. Files that cannot be read count for nothing (``jsproj test`` and
    ``jsproj append`` report them)."""
    from jsproj.engine.events_file import parse

    messages: list[Any] = []
    try:
        messages += [m for spec in load_specs(specs_folder) for m in spec.given]
    except errors.JsprojError:
        pass
    for file in sorted(events_folder.glob("*.jsonl")):
        try:
            messages += [m.body for m in parse(file.read_text("utf-8"))]
        except (OSError, UnicodeDecodeError, errors.JsprojError):
            continue
    events: list[Any] = []
    for message in messages:
        data = message.get("data") if isinstance(message, dict) else None
        events += data if isinstance(data, list) else [data]
    return {e["$type"] for e in events if isinstance(e, dict) and isinstance(e.get("$type"), str)}


def read_spec_file(file: Path) -> list[Spec]:
    """The specs of one file (one spec or a list), checked for format; names are not checked across files."""
    try:
        document = json.loads(file.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecFileError(f"{file}: not valid JSON: {exc}") from None
    items = document if isinstance(document, list) else [document]
    specs = []
    for n, item in enumerate(items, 1):
        where = f"{file}" + (f" (spec {n})" if isinstance(document, list) else "")
        if not isinstance(item, dict):
            raise SpecFileError(f"{where}: a spec is an object with given and expect")
        unknown = sorted(set(item) - SPEC_KEYS)
        if unknown:
            raise SpecFileError(f"{where}: unknown key {unknown[0]!r} (a spec has {', '.join(sorted(SPEC_KEYS))})")
        expect = _expect(item.get("expect"), where)
        name = item.get("name") or (file.stem if len(items) == 1 else f"{file.stem} #{n}")
        if not isinstance(name, str):
            raise SpecFileError(f"{where}: name must be text")
        now = item.get("now", DEFAULT_NOW)
        if not isinstance(now, str):
            raise SpecFileError(f"{where}: now must be an ISO 8601 timestamp")
        specs.append(Spec(name=name, file=file, given=_given(item.get("given"), file, where), expect=expect, now=now))
    return specs


def _expect(expect: Any, where: str) -> dict[str, Any]:
    """A spec's ``expect``, checked: views and aggregates by projection name, or an error alone."""
    if not isinstance(expect, dict) or not expect:
        raise SpecFileError(f"{where}: expect must be an object with views, aggregates or error")
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise SpecFileError(f"{where}: unknown expectation {unknown[0]!r} (use views, aggregates or error)")
    if "error" in expect and (set(expect) - {"error"} or not isinstance(expect["error"], dict)):
        raise SpecFileError(f"{where}: an expected error is an object, and comes without views or aggregates")
    for key in ("views", "aggregates"):
        if key in expect and not isinstance(expect[key], dict):
            raise SpecFileError(f"{where}: expect.{key} must be an object keyed by projection name")
    for name, documents in expect.get("views", {}).items():
        if not isinstance(documents, dict):
            raise SpecFileError(f"{where}: expect.views.{name} must be an object of documents by id")
    return expect


def _given(given: Any, file: Path, where: str) -> list[dict[str, Any]]:
    if isinstance(given, str):
        from jsproj.engine.events_file import parse

        events_file = file.parent / given
        try:
            text = events_file.read_text("utf-8")
        except OSError as exc:
            raise SpecFileError(f"{where}: cannot read the given events file {events_file}: {exc.strerror}") from None
        try:
            return [message.body for message in parse(text)]
        except errors.InputError as exc:
            raise SpecFileError(f"{where}: {events_file}: {exc.message}") from None
    if not isinstance(given, list) or not all(isinstance(m, dict) for m in given):
        raise SpecFileError(f"{where}: given must be a list of append messages, or an events file name")
    return given


# -- hosts --------------------------------------------------------------------


def available_hosts(dsn: str | None = None, engines: Sequence[str] = ("python",)) -> list[Host]:
    """Python always; Node when ``node`` is on the PATH; the database with each engine when ``dsn`` is given
    (each spec in a schema of its own, dropped afterwards)."""
    hosts: list[Host] = [PythonHost()]
    node = shutil.which("node")
    if node:
        hosts.append(NodeHost(node))
    if dsn:
        hosts.extend(StoreHost(schemas_in(dsn), engine) for engine in engines)
    return hosts


# -- running and comparing ----------------------------------------------------


def run_specs(
    projections_folder: str | os.PathLike[str], specs: Iterable[Spec], hosts: Sequence[Host]
) -> list[SpecResult]:
    """Every spec in every host; a spec whose given events are invalid fails in all of them alike."""
    folder = Path(projections_folder)
    sources = read_folder(folder)
    results: list[SpecResult] = []
    with Projections(sources) as loaded:
        for spec in specs:
            try:
                records = loaded.normalize(json.dumps(spec.given), now=spec.now)
            except errors.JsprojError as exc:
                results.extend(SpecResult(spec, h.name, [f"the given events are invalid: {exc}"]) for h in hosts)
                continue
            job = Job(folder, as_messages(records), now=spec.now, sources=sources)
            for host in hosts:
                results.append(SpecResult(spec, host.name, compare(spec.expect, host.run(job))))
    return results


def compare(expect: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What differs between a spec's expectation and a host's output, as readable lines (empty: it passed)."""
    if "error" in expect:
        if "error" not in actual:
            return ["expected an error, but the events applied without one"]
        got, problems = actual["error"], []
        want = expect["error"]
        for key in ("projection", "kind"):
            if key in want and got.get(key) != want[key]:
                problems.append(f"expected the error's {key} to be {want[key]!r}, got {got.get(key)!r}")
        if "message" in want and str(want["message"]) not in str(got.get("message", "")):
            problems.append(f"expected the error message to contain {want['message']!r}, got {got.get('message')!r}")
        return problems
    if "error" in actual:
        error = actual["error"]
        where = f" (projection {error['projection']})" if error.get("projection") else ""
        return [f"unexpected {error.get('kind', 'error')}{where}: {error.get('message')}"]
    problems = []
    for key in ("views", "aggregates"):
        for name, wanted in sorted(expect.get(key, {}).items()):
            known = actual.get("views", {}).keys() | actual.get("aggregates", {}).keys()
            if name not in known:
                problems.append(f"there is no projection named {name!r} ({', '.join(sorted(known)) or 'none'})")
                continue
            got = actual.get(key, {}).get(name, {} if key == "views" else None)
            if _doubles(got) != _doubles(wanted):
                problems.extend(_diff(f"{key}.{name}", wanted, got))
    return problems


def _doubles(value: Any) -> Any:
    """JSON as JavaScript reads it: 1 and 1.0 are the same number."""
    return json.loads(json.dumps(value), parse_int=float)


def _diff(label: str, expected: Any, actual: Any) -> list[str]:
    lines = difflib.unified_diff(
        json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
        json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
        f"expected {label}",
        f"actual {label}",
        lineterm="",
    )
    return list(lines)
