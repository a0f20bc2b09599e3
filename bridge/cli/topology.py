"""``event-bridge topology``: declare or check the RabbitMQ exchanges and queues."""

from __future__ import annotations

import click

from bridge.cli.group import cli
from bridge.cli.options import broker_option, rabbit
from bridge.cli.tables import table
from bridge.exceptions import AdminError
from bridge.rabbitadmin.topology import check_topology, declare_topology
from schemas.topology import Queue, instance_queue


def _instance_queue(instance: str | None) -> Queue | None:
    if instance is None:
        return None
    try:
        return instance_queue(instance)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--instance'") from exc


@cli.command()
@broker_option()
@click.option(
    "--instance",
    metavar="NAME",
    help="Also the queue of this bridge instance, bridge.instance.NAME.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only look: create nothing, list what is missing or different, exit 1 if anything is.",
)
def topology(broker: str, instance: str | None, check: bool) -> None:
    """Declare the RabbitMQ exchanges and queues, or check them.

    Declares the exchanges bridge.events and bridge.dlx and the queue
    bridge.dead (and an instance's queue with --instance) as the bridge and
    the producer do, then prints each with its messages and consumers.
    Declaring is idempotent. With --check nothing is created; bindings are not
    checked, since AMQP cannot read them. For example:

    \b
        event-bridge topology --broker amqp://guest:guest@localhost/ --check
    """
    queue = _instance_queue(instance)
    with rabbit(broker) as connection:
        try:
            if check:
                entities = check_topology(connection, queue)
            else:
                entities = declare_topology(connection, queue)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    rows = [["name", "kind", "durable", "arguments", "messages", "consumers", "status"]]
    for entity in entities:
        rows.append(
            [
                entity.name,
                entity.kind,
                "yes" if entity.durable else "no",
                " ".join(f"{k}={v}" for k, v in entity.arguments.items()) or "-",
                "-" if entity.messages is None else str(entity.messages),
                "-" if entity.consumers is None else str(entity.consumers),
                "ok" if entity.problem is None else entity.problem.partition(":")[0],
            ]
        )
    click.echo(table(rows))
    problems = [e for e in entities if e.problem is not None]
    for entity in problems:
        click.echo(f"{entity.name}: {entity.problem}", err=True)
    if problems:
        raise click.exceptions.Exit(1)
