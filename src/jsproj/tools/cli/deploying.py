"""Commands that deploy projections: ``deploy``, and ``sql`` (the same deployment as a SQL script)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from jsproj.config import ENGINES, project_file, resolve_engine, resolve_folder, resolve_schema
from jsproj.errors import InputError, PruneRequiredError
from jsproj.tools.cli.common import (
    complete_projection,
    echo_json,
    json_errors,
    json_option,
    open_store,
    projections_option,
    sandbox_options,
    store_options,
)
from jsproj.tools.render import counted

if TYPE_CHECKING:
    from jsproj.projections.deploy import DeployReport

# -- jsproj deploy / sql ----------------------------------------------------


def _usage(parser: str) -> Callable[[click.Context, click.Parameter, Any], object]:
    """A callback parsing repeated ``NAME=VALUE`` options with ``jsproj.projections.deploy.<parser>`` (imported
    when called: not at every command's start), a bad one a usage error (exit 2, as click's own)."""

    def check(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> object:
        from jsproj.projections import deploy

        try:
            return getattr(deploy, parser)(value)
        except InputError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return check


def _per_projection(flag: str, dest: str, metavar: str, parser: str, text: str) -> Callable[[Any], Any]:
    """A repeatable ``NAME=VALUE`` option, parsed by ``jsproj.projections.deploy.<parser>``."""
    return click.option(flag, dest, multiple=True, metavar=metavar, callback=_usage(parser), help=text)


lifecycle_option = _per_projection("--lifecycle", "lifecycles", "NAME=inline|async|live", "parse_lifecycles",
                                   "Override the lifecycle a projection declares (repeatable).")  # fmt: skip
on_error_option = _per_projection("--on-error", "on_error", "NAME=stop|dead-letter", "parse_on_error",
                                  "What an async projection does when a handler throws: stop (the default) or "
                                  "dead-letter the event and go on.")  # fmt: skip
partitions_option = _per_projection("--partitions", "partitions", "NAME=N", "parse_partitions",
                                    "Split an async stream or view projection into N partitions by document key, "
                                    "so that up to N daemons share it (default 1).")  # fmt: skip
emit_option = click.option(
    "--emit",
    "emits",
    multiple=True,
    metavar="NAME",
    help="Let async projection NAME write events (KurrentDB's emit and linkTo), appended by the daemon exactly "
    "once (repeatable; docs/from-kurrentdb.md#emit-and-linkto). Without it, a handler that emits fails.",
)


python_path_option = click.option(
    "--python-path",
    metavar="DIR",
    envvar="JSPROJ_PYTHON_PATH",
    show_envvar=True,
    help="Where the database server's Python finds mini-racer, for --engine plpython  "
    "[default: /usr/local/lib/jsproj/site].",
)


@click.command()
@projections_option()
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    help="What runs inline projections: this Python process, or the database (plpython3u, PLV8 or PL/JS)."
    "  [env var: JSPROJ_ENGINE; default: engine in jsproj.toml, else python]",
)
@lifecycle_option
@on_error_option
@partitions_option
@emit_option
@click.option(
    "--prune",
    is_flag=True,
    help="Remove the deployed projections the folder no longer has, with their documents (without it such a "
    "deploy is refused and changes nothing).",
)
@click.option(
    "--dry-run",
    "dry_run",
    is_flag=True,
    help="Print what the deploy would do (added, changed, removed, rebuilt, indexes) and change nothing.",
)
@click.option(
    "--no-promote",
    "no_promote",
    is_flag=True,
    help="A new .version() of an async projection is built beside the deployed one, then waits for "
    "`jsproj promote NAME` (default: the daemon switches to it when built).",
)
@python_path_option
@store_options
@sandbox_options
@json_option
def deploy(
    projections_dir: Path | None,
    engine: str | None,
    lifecycles: dict[str, str],
    on_error: dict[str, str],
    partitions: dict[str, int],
    emits: tuple[str, ...],
    prune: bool,
    dry_run: bool,
    no_promote: bool,
    dsn: str | None,
    schema: str | None,
    python_path: str | None,
    timeout: float,
    memory_limit: int,
    as_json: bool,
) -> None:
    """Deploy the projections of a folder to the store.

    Migrates the schema, checks every projection in the sandbox, registers
    them (and the files of upcasters), creates their document tables and
    rebuilds the documents of new and changed ones from the event log
    (appends wait meanwhile); a changed upcaster changes the projections
    whose input it reaches (docs/deploy.md#upcasters). Projections no
    longer in the folder are removed with their documents only with --prune;
    without it such a deploy is refused. --dry-run prints the plan and changes
    nothing; it exits with 1, as the deploy would, when the deploy would be
    refused.

    \b
    Examples:
      jsproj deploy
      jsproj deploy --dry-run
      jsproj deploy --prune
      jsproj deploy --projections src/projections --engine plpython
      jsproj deploy --lifecycle Journal=live --lifecycle Traveled=inline
      jsproj deploy --partitions Party=8
      jsproj deploy --lifecycle order_shipping=async --emit order_shipping
    """
    from jsproj.engine.projections import read_folder
    from jsproj.projections.deploy import deploy as run_deploy
    from jsproj.projections.deploy import no_promote_refusal, prune_refusal

    with json_errors(as_json):  # every option checked before the store (which may start a server)
        sources = read_folder(resolve_folder("projections", projections_dir))
        chosen, lifecycle_map, on_error_map = resolve_engine(engine), lifecycles, on_error  # parsed by the options
        partition_map, indexes = partitions, project_file().indexes
        with open_store(dsn, schema, create=not dry_run, migrate=not dry_run) as store:  # a dry run changes nothing
            try:
                report = run_deploy(
                    store, sources, engine=chosen, lifecycles=lifecycle_map, on_error=on_error_map,
                    partitions=partition_map, indexes=indexes, emits=emits, timeout=timeout, memory_limit=memory_limit,
                    python_path=python_path, prune=prune, dry_run=dry_run, promote=not no_promote,
                )  # fmt: skip
            except PruneRequiredError as exc:
                raise exc.replace(prune_refusal(exc.info.get("removed") or [], "pass --prune")) from None
            except InputError as exc:
                if "changed" not in exc.info:
                    raise
                raise exc.replace(no_promote_refusal(exc.info["changed"], "--no-promote")) from None
    if as_json:
        echo_json(report.to_dict())
    else:
        for line in _report_lines(report):
            click.echo(line)
    if report.refused:  # a plan step in CI must fail where the deploy would
        click.echo(f"error: {prune_refusal(report.refused, 'pass --prune')}", err=True)
        raise click.exceptions.Exit(1)


def _report_lines(report: DeployReport) -> list[str]:
    """A deploy's report (or a dry run's plan) as the lines ``jsproj deploy`` prints."""
    plan = report.dry_run
    found = ["dry run: nothing was changed; a deploy would do this:"] if plan else []
    for label in ("added", "changed", "removed", "unchanged"):
        names = getattr(report, label)
        if names:
            refused = " (refused without --prune)" if label == "removed" and plan and not report.prune else ""
            found.append(f"{label}: {', '.join(names)}{refused}")
    found += [f"upcaster files {label}: {', '.join(report.upcaster_files[label])}"
              for label in ("added", "changed", "removed") if report.upcaster_files.get(label)]  # fmt: skip
    if plan and report.rebuild:
        found.append(f"rebuilt now (appends wait): {', '.join(report.rebuild)}")
    for name, events in report.rebuilt.items():
        found.append(f"rebuilt {name} from {counted(events, 'event')}")
    for name, changed in report.indexes.items():
        for label in ("created", "dropped"):
            if changed[label]:
                found.append(f"{name}: indexes {label}: {', '.join(changed[label])}")
    if report.building:
        found.append(f"built by the daemon (jsproj daemon): {', '.join(report.building)}")
    if report.pending:
        found.append(f"new versions built beside the deployed ones (jsproj daemon): {', '.join(report.pending)}")
    if report.retired:
        retired = "kept, dropped with --prune" if plan else "dropped"
        found.append(f"replaced versions' tables {retired}: {', '.join(report.retired)}")
    found.append(f"engine: {report.engine}")
    return found


@click.command("sql")
@projections_option()
@click.option(
    "--engine",
    type=click.Choice([engine for engine in ENGINES if engine != "python"]),
    required=True,
    help="The in-database engine (docs/deploy.md says which to choose where).",
)
@click.option(
    "--schema",
    metavar="NAME",
    help="Schema of the store's tables.  [env var: JSPROJ_SCHEMA; default: schema in jsproj.toml, else public]",
)
@lifecycle_option
@on_error_option
@partitions_option
@emit_option
@click.option("--prune", is_flag=True, help="Remove the deployed projections the folder no longer has.")
@python_path_option
@sandbox_options
def sql_command(
    projections_dir: Path | None,
    engine: str,
    schema: str | None,
    lifecycles: dict[str, str],
    on_error: dict[str, str],
    partitions: dict[str, int],
    emits: tuple[str, ...],
    prune: bool,
    python_path: str | None,
    timeout: float,
    memory_limit: int,
) -> None:
    """Print the SQL that deploys a folder's projections with an in-database engine.

    For a DBA to review and apply by hand, in one transaction (psql's -1),
    as the second example does. It migrates the schema as `jsproj migrate`
    does, creates the engine's functions and deploys the projections (and
    the files of upcasters).

    \b
    Examples:
      jsproj sql --engine plpython > deploy.sql
      psql -v ON_ERROR_STOP=1 -1 -f deploy.sql
      jsproj sql --engine plv8 --lifecycle order_shipping=async --emit order_shipping > deploy.sql
    """
    from jsproj.engine.projections import Projections, read_folder
    from jsproj.projections.deploy import DEFAULT_PYTHON_PATH, deployment_sql

    chosen_schema = resolve_schema(schema)
    sources = read_folder(resolve_folder("projections", projections_dir))
    with Projections(sources, timeout=timeout, memory_limit=memory_limit) as loaded:
        click.echo(
            deployment_sql(
                loaded.sources,
                loaded.infos,
                engine=engine,
                schema=chosen_schema,
                lifecycles=lifecycles,
                indexes=project_file().indexes,
                on_error=on_error,
                partitions=partitions,
                emits=emits,
                prune=prune,
                timeout=timeout,
                memory_limit=memory_limit,
                python_path=python_path or DEFAULT_PYTHON_PATH,
                upcasting=loaded.upcasting,
            ),
            nl=False,
        )


@click.command()
@click.argument("name", shell_complete=complete_projection)
@store_options
@json_option
def promote(name: str, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Switch a projection to the new version that waits for it (deployed with --no-promote).

    The daemon builds it again to the head of the log, beside the deployed
    version, and switches in one transaction; the old version's table is
    kept until `jsproj deploy --prune`.

    \b
    Examples:
      jsproj promote Party
    """
    from jsproj.projections.promote import promote as run_promote

    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        version = run_promote(store, name)
    if as_json:
        echo_json({"name": name, "version": version})
        return
    click.echo(f"{name}: version {version} is switched to when the daemon has built it")


COMMANDS = [deploy, sql_command, promote]
