"""Commands that read the documents of deployed projections: ``view`` and ``export``."""

from __future__ import annotations

import json

import click
from rich.console import Console

from jsproj.cli.common import echo_json, json_errors, json_option, open_store, store_options

# -- jsproj view / export ---------------------------------------------------


@click.command()
@click.argument("name")
@click.argument("document_id", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Documents per page.")
@click.option("--after", metavar="ID", help="Show the page after this document id.")
@store_options
@json_option
def view(
    name: str,
    document_id: str | None,
    limit: int,
    after: str | None,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Show one document of projection NAME, or a page of them (in id order).

    \b
    Examples:
      jsproj view Party quest-1
      jsproj view Party --json --limit 1000
      jsproj view Traveled
    """
    from jsproj.render import documents_table
    from jsproj.views import fetch_view

    with json_errors(as_json), open_store(dsn, schema) as store:
        found = fetch_view(store, name, document_id, limit=limit if document_id is None else None, after=after)
    if as_json:
        echo_json(found)
    elif document_id is not None:
        Console().print_json(json.dumps(found, ensure_ascii=False))
    else:
        Console().print(
            documents_table(
                f"{name} ({len(found)} documents{', more with --after' if len(found) == limit else ''})", found
            )
        )


@click.command()
@store_options
@json_option
def export(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Print every stored view and aggregate: {"views": {name: {id: doc}}, "aggregates": {name: doc}}.

    The same shape as `jsproj simulate --json`, so a store can be compared
    with a simulation of its events.

    \b
    Examples:
      jsproj export --json > views.json
      diff <(jsproj export --json | jq -S .) <(jsproj simulate projections events.jsonl --json | jq -S .)
    """
    from jsproj.render import print_views
    from jsproj.views import export_views

    with json_errors(as_json), open_store(dsn, schema) as store:
        exported = export_views(store)
    if as_json:
        echo_json(exported)
    else:
        print_views(exported)


COMMANDS = [view, export]
