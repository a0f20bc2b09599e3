"""The seed's ``signals.py``, as payload builders: ``apps.py`` declares which save sends which.

Each function returns the ``data`` of its event exactly as the seed's receivers
built it: camelCase keys, ``str()`` of dates and times, ``float()`` of amounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api_rest.models import Calificacion, Cliente, Reserva, Servicio

__all__ = ["calificacion", "cliente", "reserva", "servicio"]


def reserva(instance: Reserva) -> dict[str, Any]:
    """``reserva:creada`` and ``reserva:actualizada``."""
    return {
        "reserva": {
            "id": instance.id,
            "clienteId": instance.cliente.id,
            "estado": instance.estado,
            "fecha": str(instance.fecha),
            "hora": str(instance.hora),
            "totalEstimado": float(instance.total_estimado),
        }
    }


def servicio(instance: Servicio) -> dict[str, Any]:
    """``servicio:creado``."""
    return {
        "servicio": {
            "id": instance.id,
            "nombre": instance.nombre_servicio,
            "precio": float(instance.precio),
            "proveedorId": instance.proveedor.id,
            "categoriaId": instance.categoria.id,
        }
    }


def calificacion(instance: Calificacion) -> dict[str, Any]:
    """``calificacion:creada``."""
    return {
        "calificacion": {
            "id": instance.id,
            "puntuacion": instance.puntuacion,
            "servicioId": instance.servicio.id,
        }
    }


def cliente(instance: Cliente) -> dict[str, Any]:
    """``cliente:nuevo``."""
    return {
        "cliente": {
            "id": instance.id,
            "nombre": instance.user.username,
            "email": instance.user.email,
        }
    }
