"""Every event type the system knows, each as one small payload model.

To add an event type, add one class here::

    @CATALOG.register("factura:emitida", Category.BUSINESS)
    class FacturaEmitida(Payload):
        \"\"\"An invoice was issued.\"\"\"

        factura_id: int
        total: Money

That is all: the producer, the bridge, the HTTP API and ``event-bridge schema``
pick it up. Python fields are snake_case; on the wire they are camelCase
(``factura_id`` is ``facturaId``). Entities such as :class:`Reserva` carry a
required ``id`` and optional other fields, because an event may carry only what
changed, as the seed's test event does.
"""

from __future__ import annotations

from datetime import date

from pydantic import ConfigDict

from schemas.payload import Catalog, Category, Clock, Money, Payload

__all__ = [
    "CATALOG",
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
]

CATALOG = Catalog()


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


@CATALOG.register("reserva:creada", Category.BUSINESS)
class ReservaCreada(Payload):
    """A booking was created."""

    reserva: Reserva


@CATALOG.register("reserva:actualizada", Category.BUSINESS)
class ReservaActualizada(Payload):
    """A booking changed."""

    reserva: Reserva


@CATALOG.register("reserva:cancelada", Category.BUSINESS)
class ReservaCancelada(Payload):
    """A booking was cancelled."""

    reserva: Reserva
    motivo: str | None = None


@CATALOG.register("servicio:creado", Category.BUSINESS)
class ServicioCreado(Payload):
    """A provider published a service."""

    servicio: Servicio


@CATALOG.register("servicio:actualizado", Category.BUSINESS)
class ServicioActualizado(Payload):
    """A service changed."""

    servicio: Servicio


@CATALOG.register("calificacion:creada", Category.BUSINESS)
class CalificacionCreada(Payload):
    """A client rated a service."""

    calificacion: Calificacion


@CATALOG.register("cliente:nuevo", Category.BUSINESS)
class ClienteNuevo(Payload):
    """A client registered."""

    cliente: Cliente


@CATALOG.register("proveedor:nuevo", Category.BUSINESS)
class ProveedorNuevo(Payload):
    """A provider registered."""

    proveedor: Proveedor


@CATALOG.register("pago:procesado", Category.BUSINESS)
class PagoProcesado(Payload):
    """A payment went through."""

    pago: Pago


# Notifications: addressed to one role or one user, as in the seed's views.


@CATALOG.register("nueva_solicitud", Category.NOTIFICATION)
class NuevaSolicitud(Payload):
    """A client asked a provider for a service."""

    servicio_id: int
    cliente_id: int


@CATALOG.register("nueva_reserva", Category.NOTIFICATION)
class NuevaReserva(Payload):
    """Providers: a client booked."""

    reserva_id: int
    cliente_nombre: str


@CATALOG.register("reserva_confirmada", Category.NOTIFICATION)
class ReservaConfirmada(Payload):
    """A user's booking was confirmed."""

    reserva_id: int


# The live dashboard: any JSON object, with the seed's counters typed.


class Counts(Payload):
    """A pair of counters on the dashboard; other counters may sit beside them."""

    model_config = ConfigDict(extra="allow")

    total: int | None = None
    activos: int | None = None


@CATALOG.register("dashboard:update", Category.DASHBOARD)
class DashboardUpdate(Payload):
    """A new snapshot of the dashboard; each new connection gets the latest."""

    model_config = ConfigDict(extra="allow")

    services: Counts | None = None
    clients: Counts | None = None
