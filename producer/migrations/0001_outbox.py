"""The outbox table; on PostgreSQL, a trigger that NOTIFYs the relay when an insert commits."""

from __future__ import annotations

from typing import Any

import django.utils.timezone
from django.db import migrations, models

# A statement-level trigger: the NOTIFY is part of the inserting transaction, so the
# relay wakes when it commits, never before, and nothing if it rolls back. PostgreSQL
# folds identical notifications of one transaction into one.
NOTIFY = """
CREATE FUNCTION event_bridge_outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('event_bridge_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER event_bridge_outbox_notify AFTER INSERT ON event_bridge_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION event_bridge_outbox_notify();
"""
DROP_NOTIFY = """
DROP TRIGGER IF EXISTS event_bridge_outbox_notify ON event_bridge_outbox;
DROP FUNCTION IF EXISTS event_bridge_outbox_notify();
"""


def create_notify(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NOTIFY)


def drop_notify(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_NOTIFY)


class Migration(migrations.Migration):
    initial = True
    dependencies = []  # noqa: RUF012 - Django's migration format

    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="OutboxEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("event_id", models.CharField(max_length=128)),
                ("body", models.TextField()),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "outbox event",
                "db_table": "event_bridge_outbox",
                "ordering": ("id",),
            },
        ),
        migrations.RunPython(create_notify, drop_notify, elidable=False),
    ]
