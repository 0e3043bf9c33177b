"""Commands on a project folder: ``init``, ``check`` and ``test``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from jsproj import errors, logs
from jsproj.config import ENGINES, project_file, resolve_folder
from jsproj.tools.cli.common import echo_json, json_errors, json_option, projections_option, sandbox_options
from jsproj.tools.render import counted

if TYPE_CHECKING:
    from jsproj.tools.specs import SpecResult

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quest"

JSPROJ_TOML = """\
# jsproj settings. Flags win over JSPROJ_* environment variables, which win over this file.
[jsproj]
# dsn = "postgresql://user@host/db"   # absent: the embedded database under .jsproj/
schema = "public"
engine = "python"            # what runs inline projections: python | plpython | plv8 | pljs
projections = "projections"  # projection files (*.js)
specs = "specs"              # projection specs for `jsproj test` (*.json)
"""

GITIGNORE = ".jsproj/\n"


def projections_folder(folder: Path | None, projections: Path | None) -> Path:
    """The projections of a project folder, or the folder itself when it holds projection files."""
    if projections is None and folder is not None and any(folder.glob("*.js")):
        return folder
    return resolve_folder("projections", projections, folder)


def _project_root(folder: Path | None) -> Path:
    """The project's folder: where its jsproj.toml is, else ``folder`` (or the current one)."""
    found = project_file(folder)
    return found.path.parent if found.path is not None else folder or Path()


# -- jsproj init --------------------------------------------------------------


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=Path())
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@json_option
def init(folder: Path, force: bool, as_json: bool) -> None:
    """Create a jsproj project in FOLDER (default: the current folder).

    Writes jsproj.toml, projections/ with one example of every kind and
    lifecycle, an events file, and specs/ for `jsproj test`. Existing files
    are left alone unless --force is given.

    \b
    Examples:
      jsproj init my-read-models && cd my-read-models
      jsproj check && jsproj test
      jsproj deploy && jsproj append events.jsonl && jsproj daemon --until-caught-up
    """
    files = {Path("jsproj.toml"): JSPROJ_TOML, Path(".gitignore"): GITIGNORE}
    for sub in ("projections", "specs"):
        for path in sorted((EXAMPLE / sub).iterdir()):
            files[Path(sub) / path.name] = path.read_text("utf-8")
    files[Path("events.jsonl")] = (EXAMPLE / "events.jsonl").read_text("utf-8")
    existing = sorted(str(path) for path in files if (folder / path).exists())
    with json_errors(as_json):
        if existing and not force:
            raise errors.InputError(
                f"{folder} already has {', '.join(existing)}: nothing was written (--force overwrites)"
            )
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, "utf-8")
    written = sorted(str(path) for path in files)
    if as_json:
        echo_json({"folder": str(folder), "written": written})
        return
    click.echo(f"created a jsproj project in {folder}:")
    for name in written:
        click.echo(f"  {name}")
    where = "" if folder == Path() else f"cd {folder} && "
    click.echo("\nTry next:")
    click.echo(f"  {where}jsproj check          # load every projection in the sandbox")
    click.echo("  jsproj test           # run the specs in every host")
    click.echo("  jsproj repl           # try events interactively")
    click.echo("  jsproj deploy && jsproj append events.jsonl && jsproj daemon --until-caught-up")


# -- jsproj check ---------------------------------------------------------------


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@projections_option("projections")
@sandbox_options
@json_option
def check(folder: Path | None, projections: Path | None, timeout: float, memory_limit: int, as_json: bool) -> None:
    """Load every projection of a project in the sandbox and report every problem.

    FOLDER is a project folder (its jsproj.toml applies) or a folder of
    projection files; by default the current project. Reports syntax errors
    with file and line, unsafe or duplicate names, handlers that are not
    functions, unknown lifecycles, upcasters and renames that clash (twice
    the same version, a rename cycle, a type renamed away and still
    upcast or handled, a version missing in a chain), and handlers of an
    event type named almost like one the project's specs and events files
    have (a typo: such a handler never runs). Lists the upcasters and
    renames found. Exits with 1 when there is any problem.

    \b
    Examples:
      jsproj check
      jsproj check path/to/projections --json
    """
    from jsproj.engine.check import check_folder
    from jsproj.tools.specs import event_types_seen

    target = projections_folder(folder, projections)
    seen = event_types_seen(resolve_folder("specs", None, folder), _project_root(folder))
    report = check_folder(target, seen=seen, timeout=timeout, memory_limit=memory_limit)
    if as_json:
        echo_json(report.to_dict())
    else:
        for problem in report.problems:
            where = f"{problem.where}: " if problem.where and not problem.message.startswith(problem.where) else ""
            click.echo(f"{where}{problem.message}  [{problem.kind}]", err=True)
        if report.ok:
            names = ", ".join(f"{i.name} ({i.kind}, {i.lifecycle})" for i in report.projections)
            click.echo(f"{target}: {counted(len(report.projections), 'projection')}, no problems: {names}")
            for u in report.upcasting:
                what = f"rename {u.renamed} -> {u.event_type}" if u.renamed else f"upcaster {u}"
                click.echo(f"  {what} ({u.file})")
        else:
            click.echo(f"{target}: {counted(len(report.problems), 'problem')}", err=True)
    if not report.ok:
        raise click.exceptions.Exit(1)


# -- jsproj test ----------------------------------------------------------------


@click.command("test")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@projections_option("projections")
@click.option(
    "--specs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of spec files (*.json).  [env var: JSPROJ_SPECS; default: specs in jsproj.toml, else specs]",
)
@click.option("--dsn", metavar="DSN", help="Also run every spec in this PostgreSQL (each in a schema of its own).")
@click.option(
    "--engine",
    "engines",
    type=click.Choice(ENGINES),
    multiple=True,
    help="Inline engine(s) for the database runs (repeatable).  [default: python]",
)
@click.option("-k", "pattern", metavar="TEXT", help="Only the specs whose name contains TEXT.")
@json_option
def test_command(
    folder: Path | None,
    projections: Path | None,
    specs: Path | None,
    dsn: str | None,
    engines: tuple[str, ...],
    pattern: str | None,
    as_json: bool,
) -> None:
    """Run projection specs (given events, expected views) in every host available.

    The Python sandbox always; Node.js when `node` is on the PATH; with
    --dsn, a real store too: deploy, append, daemon, read back (inline
    projections on each --engine). A spec file holds one spec or a list:

    \b
      {"name": "a party reaches Baerlon",
       "given": [{"id": "quest-1", "type": "Quest", "data": [...]}],
       "expect": {"views": {"Party": {"quest-1": {...}}},
                  "aggregates": {"Traveled": {...}}}}

    Each projection named under expect must have exactly those documents;
    "expect": {"error": {"projection": ..., "message": ...}} expects a handler
    error. Failures show a diff; exits with 1 when any spec fails.

    \b
    Examples:
      jsproj test
      jsproj test -k Moria
      jsproj test --dsn postgresql:///scratch --engine python --engine plpython
    """
    from jsproj.tools.specs import available_hosts, load_specs, run_specs

    with json_errors(as_json):
        projections_dir = projections_folder(folder, projections)
        loaded = load_specs(resolve_folder("specs", specs, folder))
        chosen = [spec for spec in loaded if pattern is None or pattern in spec.name]
        if not chosen:
            raise errors.InputError(f"no spec name contains {pattern!r}")
        hosts = available_hosts(dsn or os.environ.get("JSPROJ_DSN"), engines or ("python",))
        with logs.writing_to(level=logging.WARNING):  # the report says what happened; a daemon's INFO would not
            results = run_specs(projections_dir, chosen, hosts)
    failed = [r for r in results if not r.passed]
    if as_json:
        echo_json({
            "hosts": [h.name for h in hosts],
            "passed": sum(r.passed for r in results),
            "failed": len(failed),
            "results": [r.to_dict() for r in results],
        })  # fmt: skip
    else:
        _print_results(results, [h.name for h in hosts])
    if failed:
        raise click.exceptions.Exit(1)


def _print_results(results: list[SpecResult], hosts: list[str]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    by_spec: dict[str, list[SpecResult]] = {}
    for result in results:
        by_spec.setdefault(result.spec.name, []).append(result)
    for name, outcomes in by_spec.items():
        failed = [r for r in outcomes if not r.passed]
        if not failed:
            console.print(f"[green]PASS[/green] {name}")
            continue
        console.print(f"[red]FAIL[/red] {name}  [dim]({outcomes[0].spec.file})[/dim]")
        for result in failed:
            console.print(f"  in {result.host}:")
            for line in result.problems:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                console.print(f"    {line}", style=style or None, markup=False)
    failed_specs = sum(1 for outcomes in by_spec.values() if any(not r.passed for r in outcomes))
    summary = f"{len(by_spec) - failed_specs} passed, {failed_specs} failed, in {', '.join(hosts)}"
    console.print(f"\n[{'red' if failed_specs else 'green'}]{summary}[/]")


COMMANDS = [init, check, test_command]
