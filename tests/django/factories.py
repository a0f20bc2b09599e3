"""The example's models, built with the values the seed's examples use."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User

from api_rest.models import Calificacion, Categoria, Cliente, Proveedor, Reserva, Servicio

PASSWORD = "a-password-for-tests"


def user(username: str, *roles: str) -> User:
    """A user who can log in with :data:`PASSWORD`, in the groups ``roles``."""
    created = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    for role in roles:
        created.groups.add(Group.objects.get_or_create(name=role)[0])
    return created


def cliente(username: str = "ana") -> Cliente:
    return Cliente.objects.create(user=user(username, "cliente"))


def proveedor(username: str = "pedro") -> Proveedor:
    return Proveedor.objects.create(user=user(username, "proveedor"))


def servicio(proveedor: Proveedor, **fields: Any) -> Servicio:
    categoria, _ = Categoria.objects.get_or_create(nombre="Limpieza")
    values = {"nombre_servicio": "Limpieza de hogar", "precio": Decimal("25000.00")} | fields
    return Servicio.objects.create(proveedor=proveedor, categoria=categoria, **values)


def reserva(cliente: Cliente, **fields: Any) -> Reserva:
    values = {
        "fecha": date(2024, 11, 15),
        "hora": time(14, 30),
        "estado": "pendiente",
        "total_estimado": Decimal("50000.00"),
    } | fields
    return Reserva.objects.create(cliente=cliente, **values)


def calificacion(servicio: Servicio, puntuacion: int = 5) -> Calificacion:
    return Calificacion.objects.create(servicio=servicio, puntuacion=puntuacion)
