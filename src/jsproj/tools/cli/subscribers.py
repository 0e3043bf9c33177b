"""The ``subscribers`` command: run Python subscribers, imported by dotted path, until stopped."""

from __future__ import annotations

import logging
import signal

import click

from jsproj.follow.subscriptions import Runner, load_subscribers
from jsproj.tools.cli.common import Seconds, open_store, store_options

logger = logging.getLogger("jsproj.subscribers")


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="MODULE[:ATTR]...")
@click.option("--until-caught-up", is_flag=True, help="Exit once everything appended before the start is handled.")
@click.option("--poll-interval", type=Seconds(0.01), default=1.0, show_default=True,
              help="Seconds between polls when no notification arrives.")  # fmt: skip
@store_options
def subscribers(
    targets: tuple[str, ...], until_caught_up: bool, poll_interval: float, dsn: str | None, schema: str | None
) -> None:
    """Run Python subscribers: handlers decorated with @jsproj.subscriber(name).

    Each TARGET is MODULE:ATTR (one subscriber) or MODULE (every subscriber
    it defines), imported with the working directory on the path. Each runs
    on a thread of its own; run this command on as many machines as you
    like: one runner per subscription works at a time (an advisory lock),
    and another takes over when it dies. SIGTERM finishes the current page
    and exits. A subscriber whose handler raises stops (its error in
    ``jsproj status``); the others go on, and the exit code is 1.

    \b
    Examples:
      jsproj subscribers myapp.handlers
      jsproj subscribers myapp.handlers:welcome_mail myapp.billing:invoices
      jsproj subscribers myapp.handlers --until-caught-up
    """
    found = load_subscribers(targets)
    with open_store(dsn, schema) as store:
        runner = Runner([s.subscription(store, poll_interval=poll_interval) for s in found])
        previous = {sig: signal.signal(sig, lambda *_: runner.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            logger.info(f"subscribers {', '.join(s.name for s in found)} started")
            failed = runner.run(until_caught_up=until_caught_up)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    # Runner logged each failure as it happened (on the jsproj.subscribers logger, with time and level).
    logger.info("caught up" if until_caught_up and not failed else "stopped")
    if failed:
        raise click.exceptions.Exit(1)


COMMANDS = [subscribers]
