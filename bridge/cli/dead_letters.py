"""``event-bridge dead-letters``: list the messages in bridge.dead, or replay them."""

from __future__ import annotations

import click

from bridge.cli.group import cli
from bridge.cli.options import broker_option, catalog_option, named_catalog, rabbit, strict_option
from bridge.cli.tables import table
from bridge.decode import Decoder
from bridge.exceptions import AdminError
from bridge.rabbitadmin.deadletters import dead_letters as read_dead_letters
from bridge.rabbitadmin.deadletters import replay as replay_letters
from schemas import Reader


@cli.group("dead-letters")
def dead_letters() -> None:
    """List the messages in bridge.dead, or replay them.

    bridge.dead holds what no bridge could use: messages that are not events
    (the reason is in their x-bridge-error header) and events that failed too
    often or expired in an instance's queue (x-death). Listing leaves them in
    place; replay sends the ones that now decode back to bridge.events. For
    example:

    \b
        event-bridge dead-letters list --limit 10
        event-bridge dead-letters replay --all --dry-run
    """


@dead_letters.command("list")
@broker_option()
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many, oldest first; 0 for all.",
)
def list_dead_letters(broker: str, limit: int) -> None:
    """List the dead letters without taking them out of the queue.

    One line each: position, message id, why it died, when, and the start of
    its body. The messages are read unacknowledged and handed back in their
    order, so nothing is lost or reordered; each read counts as a delivery
    (x-delivery-count). For example:

    \b
        event-bridge dead-letters list --broker amqp://guest:guest@localhost/
    """
    with rabbit(broker) as connection:
        try:
            letters = read_dead_letters(connection, limit or None)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    if not letters:
        click.echo("bridge.dead is empty")
        return
    rows = [["#", "message id", "reason", "when", "body"]]
    for letter in letters:
        rows.append(
            [
                str(letter.position),
                letter.message_id or "-",
                letter.reason,
                letter.when.strftime("%Y-%m-%d %H:%M:%S") if letter.when else "-",
                _preview(letter.body),
            ]
        )
    click.echo(table(rows))


def _preview(body: bytes, size: int = 100) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= size else text[: size - 1] + "…"


@dead_letters.command("replay")
@broker_option()
@click.option("--all", "everything", is_flag=True, help="Every message in bridge.dead.")
@click.option(
    "--id", "ids", multiple=True, metavar="ID", help="The message with this id; repeat for more."
)
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
@catalog_option("The catalog the bridges run with (their --catalog), to decode as they do.")
@strict_option()
def replay_dead_letters(
    broker: str,
    everything: bool,
    ids: tuple[str, ...],
    dry_run: bool,
    catalog: str | None,
    strict_events: bool,
) -> None:
    """Send dead letters that now decode back to bridge.events.

    Each selected message is decoded again, as the bridge would: one that is
    still not an event stays in bridge.dead, with the reason printed. The
    others are published to bridge.events with their event's routing key and
    leave bridge.dead only once RabbitMQ confirmed them; one that no queue
    would take stays too. It exits 1 if a selected message was kept. For
    example, after deploying a bridge that knows a new event type:

    \b
        event-bridge dead-letters replay --id 5f0c... --id 9a1b...
    """
    if everything == bool(ids):
        raise click.UsageError("give --all or at least one --id")
    wanted = frozenset(ids)
    decoder = Decoder(Reader(named_catalog(catalog), strict=strict_events))
    with rabbit(broker) as connection:
        try:
            outcomes = replay_letters(
                connection,
                lambda letter: everything or letter.message_id in wanted,
                dry_run=dry_run,
                decoder=decoder,
            )
        except AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    kept = 0
    for outcome in outcomes:
        name = outcome.letter.message_id or f"#{outcome.letter.position}"
        if outcome.kept_because is None:
            click.echo(f"replayed {name} to {outcome.routing_key}")
        elif dry_run and outcome.routing_key is not None:
            click.echo(f"would replay {name} to {outcome.routing_key}")
        else:
            kept += 1
            click.echo(f"kept {name}: {outcome.kept_because}")
    missing = wanted - {o.letter.message_id for o in outcomes}
    for id_ in sorted(missing):
        kept += 1
        click.echo(f"not found {id_}: no message with this id in bridge.dead")
    if not outcomes and not missing:
        click.echo("bridge.dead is empty")
    if kept:
        raise click.exceptions.Exit(1)
