"""``manage.py demo_users --password P``: the example's users, created once, then left alone."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from api_rest.models import Cliente, Proveedor
from api_rest.roles import ADMIN, CLIENTE, PROVEEDOR, ROLES

#: username -> (role, email)
DEMO_USERS = {
    "admin": (ADMIN, "admin@example.com"),
    "ana": (CLIENTE, "ana@example.com"),
    "pedro": (PROVEEDOR, "pedro@example.com"),
}


class Command(BaseCommand):
    help = "Create the demo users (admin, ana the cliente, pedro the proveedor) if missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", required=True, help="Password of the users created now.")

    @transaction.atomic
    def handle(self, *args: Any, password: str, **options: Any) -> None:
        for name in ROLES:
            Group.objects.get_or_create(name=name)
        for username, (role, email) in DEMO_USERS.items():
            created = self._ensure(username, role, email, password)
            said = password if created else "(already there; password unchanged)"
            self.stdout.write(f"  {username:<6} {said:<36} role {role}")

    def _ensure(self, username: str, role: str, email: str, password: str) -> bool:
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            return False
        if role == ADMIN:
            user = users.objects.create_superuser(username, email, password)
        else:
            user = users.objects.create_user(username, email, password)
        user.groups.add(Group.objects.get(name=role))
        if role == CLIENTE:
            Cliente.objects.create(user=user)
        elif role == PROVEEDOR:
            Proveedor.objects.create(user=user, nombre_comercial="Servicios Pedro")
        return True
