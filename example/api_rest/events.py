"""The seed's event types: the example project's catalog.

The bridge loads it with ``event-bridge serve --catalog api_rest.events`` (run
from ``example/``, or with ``example/`` on PYTHONPATH), Django through
``EVENT_BRIDGE["CATALOG"]``. It imports nothing from Django, so the bridge can
load it without the project's settings. Python fields are snake_case; on the
wire they are camelCase (``cliente_id`` is ``clienteId``). Entities such as
:class:`Reserva` carry a required ``id`` and optional other fields, because an
event may carry only what changed, as the seed's test event does.
"""

from __future__ import annotations

from datetime import date

from pydantic import ConfigDict

from schemas import Catalog, Category, Clock, Money, Payload

__all__ = [
    "Calificacion",
    "CalificacionCreada",
    "Cliente",
    "ClienteNuevo",
    "Counts",
    "DashboardUpdate",
    "NuevaReserva",
    "NuevaSolicitud",
    "Pago",
    "PagoProcesado",
    "Persona",
    "Proveedor",
    "ProveedorNuevo",
    "Reserva",
    "ReservaActualizada",
    "ReservaCancelada",
    "ReservaConfirmada",
    "ReservaCreada",
    "Servicio",
    "ServicioActualizado",
    "ServicioCreado",
    "catalog",
]

catalog = Catalog()


# Entities, as the seed's Django code serialises them.


class Reserva(Payload):
    """A booking."""

    id: int
    cliente_id: int | None = None
    estado: str | None = None
    fecha: date | None = None
    hora: Clock | None = None
    total_estimado: Money | None = None


class Servicio(Payload):
    """A service a provider offers."""

    id: int
    nombre: str | None = None
    precio: Money | None = None
    proveedor_id: int | None = None
    categoria_id: int | None = None


class Calificacion(Payload):
    """A rating a client gave a service."""

    id: int
    puntuacion: int | None = None
    servicio_id: int | None = None


class Persona(Payload):
    """A registered person: the seed sends the username as ``nombre``."""

    id: int
    nombre: str | None = None
    email: str | None = None


class Cliente(Persona):
    """A client."""


class Proveedor(Persona):
    """A provider."""


class Pago(Payload):
    """A payment for a booking."""

    id: int
    reserva_id: int | None = None
    monto: Money | None = None
    estado: str | None = None
    metodo: str | None = None


# Business events: what happened in the domain, for everyone who may see it.


@catalog.register("reserva:creada", Category.BUSINESS)
class ReservaCreada(Payload):
    """A booking was created."""

    reserva: Reserva


@catalog.register("reserva:actualizada", Category.BUSINESS)
class ReservaActualizada(Payload):
    """A booking changed."""

    reserva: Reserva


@catalog.register("reserva:cancelada", Category.BUSINESS)
class ReservaCancelada(Payload):
    """A booking was cancelled."""

    reserva: Reserva
    motivo: str | None = None


@catalog.register("servicio:creado", Category.BUSINESS)
class ServicioCreado(Payload):
    """A provider published a service."""

    servicio: Servicio


@catalog.register("servicio:actualizado", Category.BUSINESS)
class ServicioActualizado(Payload):
    """A service changed."""

    servicio: Servicio


@catalog.register("calificacion:creada", Category.BUSINESS)
class CalificacionCreada(Payload):
    """A client rated a service."""

    calificacion: Calificacion


@catalog.register("cliente:nuevo", Category.BUSINESS)
class ClienteNuevo(Payload):
    """A client registered."""

    cliente: Cliente


@catalog.register("proveedor:nuevo", Category.BUSINESS)
class ProveedorNuevo(Payload):
    """A provider registered."""

    proveedor: Proveedor


@catalog.register("pago:procesado", Category.BUSINESS)
class PagoProcesado(Payload):
    """A payment went through."""

    pago: Pago


# Notifications: addressed to one role or one user, as in the seed's views.


@catalog.register("nueva_solicitud", Category.NOTIFICATION)
class NuevaSolicitud(Payload):
    """A client asked a provider for a service."""

    servicio_id: int
    cliente_id: int


@catalog.register("nueva_reserva", Category.NOTIFICATION)
class NuevaReserva(Payload):
    """Providers: a client booked."""

    reserva_id: int
    cliente_nombre: str


@catalog.register("reserva_confirmada", Category.NOTIFICATION)
class ReservaConfirmada(Payload):
    """A user's booking was confirmed."""

    reserva_id: int


# The live dashboard: any JSON object, with the seed's counters typed.


class Counts(Payload):
    """A pair of counters on the dashboard; other counters may sit beside them."""

    model_config = ConfigDict(extra="allow")

    total: int | None = None
    activos: int | None = None


@catalog.register("dashboard:update", Category.DASHBOARD)
class DashboardUpdate(Payload):
    """A new snapshot of the dashboard; each new connection gets the latest."""

    model_config = ConfigDict(extra="allow")

    services: Counts | None = None
    clients: Counts | None = None
