"""Checking a folder of projections before deploying it: every problem at once, with file and line.

Each file is loaded alone in the sandbox (so one broken file does not hide
the others' problems), then all together; names are also checked for what
only the database would refuse later, such as two names that differ only by
case (their document tables would collide).
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsproj import errors
from jsproj.engine.projections import ProjectionInfo, Projections, Upcasting, read_folder
from jsproj.engine.sandbox import Sandbox


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a projection file."""

    kind: str
    message: str
    file: str | None = None
    line: int | None = None
    projection: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else self.file or ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "file": self.file, "line": self.line,
                "projection": self.projection}  # fmt: skip


@dataclass
class CheckReport:
    """The projections and upcasters found and the problems; the folder is fine when there are none."""

    folder: Path
    projections: list[ProjectionInfo]
    problems: list[Problem]
    upcasting: list[Upcasting] = field(default_factory=list)  # upcasters and renames (docs/dsl.md#upcasters)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "ok": self.ok,
            "projections": [
                {"name": i.name, "kind": i.kind, "lifecycle": i.lifecycle, "file": i.file} for i in self.projections
            ],
            "upcasters": [u.to_dict() for u in self.upcasting if u.renamed is None],
            "renames": [u.to_dict() for u in self.upcasting if u.renamed is not None],
            "problems": [p.to_dict() for p in self.problems],
        }


def _problem(exc: errors.JsprojError, file: str | None = None) -> Problem:
    info = exc.info
    message = exc.message
    return Problem(
        kind=exc.kind,
        message=message,
        file=info.get("file") or file,
        line=info.get("line"),
        projection=info.get("projection"),
    )


def check_folder(folder: str | os.PathLike[str], *, seen: Iterable[str] = (), **limits: Any) -> CheckReport:
    """Load every ``*.js`` file of ``folder`` in the sandbox and report every problem found; ``seen``: the
    event types the project's specs and events files hold (a handler named almost like one is a typo)."""
    path = Path(folder)
    try:
        sources = read_folder(path)
    except errors.JsprojError as exc:
        return CheckReport(path, [], [_problem(exc)])
    problems: list[Problem] = []
    infos: list[ProjectionInfo] = []
    upcasting: list[Upcasting] = []
    with Sandbox(**limits) as sandbox:
        for source in sources:
            try:
                with Projections([source], sandbox=sandbox) as loaded:
                    infos.extend(loaded.infos)
                    if not loaded.infos and not loaded.upcasting:
                        problems.append(Problem("EmptyProjectionFile", "defines no projection and no upcaster",
                                                file=source["file"]))  # fmt: skip
            except errors.JsprojError as exc:
                problems.append(_problem(exc, source["file"]))
        problems.extend(_name_clashes(infos))
        if not problems:  # what only shows when the files meet: require() across files, names, upcasters
            try:
                with Projections(sources, sandbox=sandbox) as loaded:
                    infos, upcasting = loaded.infos, loaded.upcasting
            except errors.JsprojError as exc:
                problems.append(_problem(exc))
    return CheckReport(path, infos, [*problems, *misspelt_handlers(infos, seen)], upcasting)


def misspelt_handlers(infos: Iterable[ProjectionInfo], seen: Iterable[str]) -> list[Problem]:
    """Handlers of an event type that no spec or events file has, named almost like one they have: a typo
    (``TownReachd`` for ``TownReached``) that no test catches, as the handler would simply never run.
    A handler of a type with no such near name (an event still to come) is left alone."""
    known = sorted(set(seen))
    problems = []
    for info in infos:
        for handled in info.event_types:
            close = [] if handled in known else difflib.get_close_matches(handled, known, n=1, cutoff=0.8)
            if close:
                problems.append(Problem(
                    "MisspeltHandlerError",
                    f"projection {info.name} handles {handled!r}, which no spec or events file has: did you mean "
                    f"{close[0]!r}? (a handler of a type that never comes never runs)",
                    file=info.file, projection=info.name,
                ))  # fmt: skip
    return problems


def _name_clashes(infos: list[ProjectionInfo]) -> list[Problem]:
    by_table: dict[str, list[ProjectionInfo]] = defaultdict(list)
    for info in infos:
        by_table[info.name.lower()].append(info)
    problems = []
    for clashing in by_table.values():
        if len(clashing) < 2:
            continue
        first, *others = clashing
        for other in others:
            same = other.name == first.name
            problems.append(
                Problem(
                    "DuplicateProjectionError",
                    f"projection {other.name} is also defined in {first.file}"
                    if same
                    else f"projection {other.name} differs from {first.name} ({first.file}) only by case: "
                    "their document tables would be the same",
                    file=other.file,
                    projection=other.name,
                )
            )
    return problems
