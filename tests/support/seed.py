"""The examples of the seed document (tests/data/seed.md, copied verbatim), as data.

The curl bodies are read from the document itself; the Python payloads are
what the seed's views and signals build, with the values a Django model gives.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = Path(__file__).parents[1] / "data" / "seed.md"

_CURL = re.compile(
    r"curl -X POST \S+/api/dashboard/(?P<endpoint>[a-z-]+).*?-d '(?P<body>.*?)'", re.S
)


@dataclass(frozen=True)
class Curl:
    endpoint: str
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


def curls() -> list[Curl]:
    """Every ``curl -X POST …/api/dashboard/…`` in the seed, in order."""
    text = SEED.read_text()
    return [Curl(m["endpoint"], m["body"].encode()) for m in _CURL.finditer(text)]


#: What the seed's crear_reserva view and signals pass to the notifier, by call.
PYTHON_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    # crear_reserva: notifier.emit_event('reserva:creada', {...})
    (
        "emit_event",
        "reserva:creada",
        {
            "reserva": {
                "id": 7,
                "clienteId": 3,
                "estado": "pendiente",
                "fecha": "2024-11-15",
                "hora": "14:30:00",
                "totalEstimado": 50000.0,
            }
        },
    ),
    # crear_reserva: notifier.notify_role('proveedor', 'nueva_reserva', {...})
    ("notify_role", "nueva_reserva", {"reservaId": 7, "clienteNombre": "ana"}),
    # signals: reserva_created_or_updated, for an update
    (
        "emit_event",
        "reserva:actualizada",
        {
            "reserva": {
                "id": 7,
                "clienteId": 3,
                "estado": "confirmada",
                "fecha": "2024-11-15",
                "hora": "14:30:00",
                "totalEstimado": 50000.0,
            }
        },
    ),
    # signals: servicio_created
    (
        "emit_event",
        "servicio:creado",
        {
            "servicio": {
                "id": 4,
                "nombre": "Limpieza",
                "precio": 25000.0,
                "proveedorId": 2,
                "categoriaId": 1,
            }
        },
    ),
    # signals: calificacion_created
    (
        "emit_event",
        "calificacion:creada",
        {"calificacion": {"id": 9, "puntuacion": 5, "servicioId": 4}},
    ),
    # signals: cliente_created
    (
        "emit_event",
        "cliente:nuevo",
        {"cliente": {"id": 3, "nombre": "ana", "email": "ana@example.com"}},
    ),
]
