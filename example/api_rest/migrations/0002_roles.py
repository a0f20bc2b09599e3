"""The groups whose names are the roles in bridge tokens: cliente, proveedor, admin."""

from django.db import migrations

ROLES = ("cliente", "proveedor", "admin")


def create_roles(apps, schema_editor):
    group = apps.get_model("auth", "Group")
    for name in ROLES:
        group.objects.using(schema_editor.connection.alias).get_or_create(name=name)


def remove_roles(apps, schema_editor):
    group = apps.get_model("auth", "Group")
    group.objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("api_rest", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    )

    operations = (migrations.RunPython(create_roles, remove_roles),)
