"""``manage.py generate_traffic --rate 2 --count 60``: a marketplace at work, for the live page.

Each step is one transaction doing what users do: book, confirm and pay,
cancel, rate, register, publish a service. The models' declared events (see
``apps.py``) and the seed's notifier calls send what browsers see.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import time as clock
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count, Model, QuerySet
from django.utils import timezone

from api_rest.models import Calificacion, Categoria, Cliente, Pago, Proveedor, Reserva, Servicio
from api_rest.roles import CLIENTE, PROVEEDOR, ROLES
from producer import WebSocketNotifier

MAX_COUNT = 10_000
MAX_RATE = 100.0
#: A dashboard snapshot every this many steps, and one at the end.
DASHBOARD_EVERY = 10

CATEGORIAS = ("Limpieza", "Jardinería", "Plomería", "Electricidad", "Mudanzas", "Clases")
SERVICIOS = {
    "Limpieza": ("Limpieza de hogar", "Limpieza de oficinas"),
    "Jardinería": ("Poda de árboles", "Mantenimiento de jardín"),
    "Plomería": ("Reparación de fugas", "Instalación de calentador"),
    "Electricidad": ("Revisión eléctrica", "Instalación de lámparas"),
    "Mudanzas": ("Mudanza local", "Embalaje"),
    "Clases": ("Clases de guitarra", "Refuerzo de matemáticas"),
}
NOMBRES = ("lucia", "mateo", "sofia", "diego", "valentina", "tomas", "camila", "martin", "elena")
COMERCIOS = ("Hogar Limpio", "Verde Vivo", "Agua Segura", "Voltio", "Traslados Sur", "Aprende+")

M = TypeVar("M", bound=Model)

notifier = WebSocketNotifier()
rng = secrets.SystemRandom()


def bounded(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value

    parse.__name__ = f"{kind.__name__} from {low:g} to {high:g}"
    return parse


class Command(BaseCommand):
    help = "Create realistic bookings, ratings, clients and services at a given rate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rate",
            type=bounded(float, 0.1, MAX_RATE),
            default=1.0,
            help=f"Steps per second, 0.1 to {MAX_RATE:g} (default 1).",
        )
        parser.add_argument(
            "--count",
            type=bounded(int, 1, MAX_COUNT),
            default=20,
            help=f"Steps to run, 1 to {MAX_COUNT} (default 20).",
        )

    def handle(self, *args: Any, rate: float, count: int, **options: Any) -> None:
        # call_command("generate_traffic", count=…) skips the parser's checks.
        if not 0.1 <= rate <= MAX_RATE or not 1 <= count <= MAX_COUNT:
            raise CommandError(f"--rate 0.1..{MAX_RATE:g} and --count 1..{MAX_COUNT}")
        with transaction.atomic():
            self._ensure_catalog()
        started = time.monotonic()
        for step in range(1, count + 1):
            # Paced from the start, so slow steps do not lower the rate.
            time.sleep(max(0.0, started + (step - 1) / rate - time.monotonic()))
            with transaction.atomic():
                done = self._step()
                if step % DASHBOARD_EVERY == 0 or step == count:
                    notifier.update_dashboard(dashboard())
            self.stdout.write(f"{step}/{count} {done}")
        elapsed = time.monotonic() - started
        self.stdout.write(f"{count} steps in {elapsed:.1f} s")

    def _ensure_catalog(self) -> None:
        for name in ROLES:
            Group.objects.get_or_create(name=name)
        for nombre in CATEGORIAS:
            Categoria.objects.get_or_create(nombre=nombre)
        while Proveedor.objects.count() < 3:
            nuevo_proveedor()
        while Servicio.objects.count() < 6:
            nuevo_servicio()
        while Cliente.objects.count() < 5:
            nuevo_cliente()

    def _step(self) -> str:
        """One thing users do, picked by how often they do it; says what it did."""
        [action] = rng.choices(list(STEPS), weights=list(STEPS.values()))
        return action()


def nuevo_usuario(role: str) -> Any:
    users = get_user_model()
    username = f"{rng.choice(NOMBRES)}_{secrets.token_hex(3)}"
    user = users.objects.create_user(username, f"{username}@example.com")  # no password: no login
    user.groups.add(Group.objects.get(name=role))
    return user


def nuevo_cliente() -> Cliente:
    telefono = f"+34 6{rng.randrange(10**7, 10**8)}"
    return Cliente.objects.create(user=nuevo_usuario(CLIENTE), telefono=telefono)


def nuevo_proveedor() -> Proveedor:
    comercio = f"{rng.choice(COMERCIOS)} {secrets.token_hex(2)}"
    proveedor = Proveedor.objects.create(user=nuevo_usuario(PROVEEDOR), nombre_comercial=comercio)
    # The seed has no signal for providers: the notifier sends it, like a view would.
    notifier.emit_event(
        "proveedor:nuevo",
        {
            "proveedor": {
                "id": proveedor.id,
                "nombre": proveedor.user.username,
                "email": proveedor.user.email,
            }
        },
    )
    return proveedor


def al_azar(queryset: QuerySet[M]) -> M:
    """Any one row; the catalog step makes sure there is one."""
    found = queryset.order_by("?").first()
    if found is None:
        raise CommandError(f"no {queryset.model.__name__} to choose from")
    return found


def nuevo_servicio() -> Servicio:
    categoria = al_azar(Categoria.objects.all())
    return Servicio.objects.create(
        nombre_servicio=rng.choice(SERVICIOS.get(categoria.nombre, ("Servicio general",))),
        precio=Decimal(rng.randrange(15, 120) * 1000),
        proveedor=al_azar(Proveedor.objects.all()),
        categoria=categoria,
    )


def nueva_reserva() -> str:
    cliente = al_azar(Cliente.objects.select_related("user"))
    servicio = al_azar(Servicio.objects.filter(activo=True))
    reserva = Reserva.objects.create(
        cliente=cliente,
        fecha=timezone.localdate() + timedelta(days=rng.randrange(1, 31)),
        hora=clock(rng.randrange(8, 20), rng.choice((0, 30))),
        total_estimado=servicio.precio * rng.randrange(1, 4),
    )
    # As the seed's crear_reserva does after the booking.
    notifier.notify_role(
        PROVEEDOR,
        "nueva_reserva",
        {"reservaId": reserva.id, "clienteNombre": cliente.user.username},
    )
    return f"reserva:creada {reserva.id}"


def confirmar_o_cancelar() -> str:
    reserva = Reserva.objects.filter(estado=Reserva.Estado.PENDIENTE).order_by("?").first()
    if reserva is None:
        return nueva_reserva()
    if rng.random() < 0.8:
        reserva.estado = Reserva.Estado.CONFIRMADA
        reserva.save(update_fields=["estado"])
        pagar(reserva)
    else:
        reserva.estado = Reserva.Estado.CANCELADA
        reserva.save(update_fields=["estado"])
    return f"reserva:actualizada {reserva.id} {reserva.estado}"


def pagar(reserva: Reserva) -> None:
    pago = Pago.objects.create(
        reserva=reserva,
        monto=reserva.total_estimado,
        estado=Pago.Estado.PROCESADO,
        metodo=rng.choice(Pago.Metodo.values),
    )
    notifier.emit_event(
        "pago:procesado",
        {
            "pago": {
                "id": pago.id,
                "reservaId": reserva.id,
                "monto": float(pago.monto),
                "estado": pago.estado,
                "metodo": pago.metodo,
            }
        },
    )
    notifier.notify_user(
        str(reserva.cliente.user_id), "reserva_confirmada", {"reservaId": reserva.id}
    )


def calificar() -> str:
    calificacion = Calificacion.objects.create(
        servicio=al_azar(Servicio.objects.all()),
        cliente=al_azar(Cliente.objects.all()),
        puntuacion=rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 3, 6, 8))[0],
    )
    return f"calificacion:creada {calificacion.id} ({calificacion.puntuacion}/5)"


def registro_cliente() -> str:
    return f"cliente:nuevo {nuevo_cliente().user.username}"


def registro_proveedor() -> str:
    return f"proveedor:nuevo {nuevo_proveedor()}"


def publicacion_servicio() -> str:
    return f"servicio:creado {nuevo_servicio().nombre_servicio}"


#: Each step, and how often users take it.
STEPS: dict[Callable[[], str], int] = {
    nueva_reserva: 40,
    confirmar_o_cancelar: 20,
    calificar: 15,
    registro_cliente: 10,
    publicacion_servicio: 10,
    registro_proveedor: 5,
}


def dashboard() -> dict[str, Any]:
    """The seed's dashboard counters."""
    clientes_activos = Cliente.objects.annotate(n=Count("reservas")).filter(n__gt=0).count()
    return {
        "services": {
            "total": Servicio.objects.count(),
            "activos": Servicio.objects.filter(activo=True).count(),
        },
        "clients": {"total": Cliente.objects.count(), "activos": clientes_activos},
    }
