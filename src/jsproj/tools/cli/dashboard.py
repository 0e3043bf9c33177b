"""``jsproj dashboard``: the read-only status page (``jsproj.tools.dashboard`` serves it)."""

from __future__ import annotations

import signal
import threading

import click

from jsproj.tools.cli.common import Seconds, open_store, store_options

# jsproj.tools.dashboard's defaults (tests/cli/test_dashboard.py keeps them equal): it is imported by the command only,
# as http.server adds a sixth to every command's start.
DEFAULT_PORT, DEFAULT_INTERVAL, DEFAULT_WINDOW = 8113, 5.0, 600.0


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on; 0 takes any free port (the URL printed says which).")  # fmt: skip
@click.option("--interval", type=Seconds(0.1), default=DEFAULT_INTERVAL, show_default=True,
              help="Seconds between samples of the lag chart.")  # fmt: skip
@click.option("--window", type=Seconds(1, 7 * 24 * 3600), default=DEFAULT_WINDOW, show_default=True,
              help="Seconds of lag samples kept (in memory) and charted.")  # fmt: skip
@click.option("--log-requests", is_flag=True, help="Log each request on stderr.")
@store_options
def dashboard(
    host: str, port: int, interval: float, window: float, log_requests: bool, dsn: str | None, schema: str | None
) -> None:
    """Serve a read-only status page: projections, lag over the last minutes, daemons, dead letters.

    The page polls /api/status (what `jsproj status --json` shows, with the
    daemons and dead letters) and /api/lag; /healthz answers while the store
    does. It only reads (its connections are read-only). It listens on
    127.0.0.1 unless --host says otherwise. SIGTERM or Ctrl-C stops it.

    \b
    Examples:
      jsproj dashboard
      jsproj dashboard --port 0 --interval 2
    """
    from jsproj.tools.dashboard import Dashboard

    with open_store(dsn, schema, create=False) as store:  # the options resolved, the embedded database migrated
        resolved, chosen = store.dsn, store.schema
    log = (lambda line: click.echo(line, err=True)) if log_requests else None
    stopped = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        board = Dashboard(resolved, schema=chosen, host=host, port=port, interval=interval, window=window, log=log)
        with board:
            click.echo(f"dashboard at {board.url}")
            while not stopped.wait(0.5):
                pass
        click.echo("dashboard stopped", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


COMMANDS = [dashboard]
