from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []  # noqa: RUF012 - as Django writes them

    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("customer_id", models.IntegerField()),
                ("total", models.DecimalField(decimal_places=2, max_digits=10)),
                ("shipped", models.BooleanField(default=False)),
            ],
        ),
    ]
