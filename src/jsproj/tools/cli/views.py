"""Commands that read the documents of deployed projections: ``view`` and ``export``."""

from __future__ import annotations

import json

import click
from rich.console import Console

from jsproj.tools.cli.common import complete_projection, echo_json, json_errors, json_option, open_store, store_options
from jsproj.tools.render import counted

# -- jsproj view / export ---------------------------------------------------


@click.command()
@click.argument("name", shell_complete=complete_projection)
@click.argument("document_id", required=False)
@click.option(
    "--where",
    "where",
    metavar="FIELD=VALUE",
    multiple=True,
    help="Only documents whose FIELD holds VALUE (repeatable: all must hold). FIELD is a dotted path "
    '(party.leader); VALUE is JSON when it parses (3, true, null, [1,2], {"$gt": 3}), else a string '
    "(Moria). An object of $eq, $ne, $gt, $gte, $lt, $lte, $in compares instead of containing.",
)
@click.option(
    "--order-by",
    "order_by",
    metavar="FIELD",
    help="Order by a dotted field (-FIELD: descending), ties in id order; default: the id.",
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Documents per page.")
@click.option("--after", metavar="ID", help="Show the page after this document id (the last of the previous page).")
@store_options
@json_option
def view(
    name: str,
    document_id: str | None,
    where: tuple[str, ...],
    order_by: str | None,
    limit: int,
    after: str | None,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Show one document of projection NAME, or a page of them (in id order, or --order-by).

    With --json the shape depends on the arguments only, never on the
    projection's kind: NAME ID prints the document itself; NAME alone prints
    a page, {id: document, ...} in order. An aggregate has one document,
    whose id is its name: `view Traveled --json` is {"Traveled": {...}},
    `view Traveled Traveled --json` is the document.

    \b
    Examples:
      jsproj view Party quest-1
      jsproj view Party --json --limit 1000
      jsproj view Party --where location=Moria --where 'size={"$gte": 3}' --order-by -size
      jsproj view Party --where party.leader=Frodo
      jsproj view Traveled                  # an aggregate: a page of its one document
      jsproj view Traveled Traveled --json  # the document itself
    """
    from jsproj.projections.views import View, fetch_view, parse_where
    from jsproj.tools.render import documents_table

    if document_id is not None and (where or order_by):
        raise click.UsageError("--where and --order-by query a page of documents, not one DOCUMENT_ID")
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        if document_id is not None:
            found = fetch_view(store, name, document_id)
        elif where or order_by:
            found = dict(View(store, name).find(parse_where(where), order_by, limit, after))
        else:
            found = fetch_view(store, name, limit=limit, after=after)
    if as_json:
        echo_json(found)
    elif document_id is not None:
        Console().print_json(json.dumps(found, ensure_ascii=False))
    else:
        Console().print(
            documents_table(
                f"{name} ({counted(len(found), 'document')}{', more with --after' if len(found) == limit else ''})",
                found,
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
    from jsproj.projections.views import export_views
    from jsproj.tools.render import print_views

    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        exported = export_views(store)
    if as_json:
        echo_json(exported)
    else:
        print_views(exported)


COMMANDS = [view, export]
