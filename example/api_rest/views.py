"""The seed's ``crear_reserva`` endpoint, and the page that shows live events."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from api_rest.models import Cliente, Reserva
from producer import WebSocketNotifier
from producer.conf import producer_settings
from producer.views import roles_of

notifier = WebSocketNotifier()


class ReservaEntrada(serializers.Serializer):
    """What ``POST /api/reservas/`` takes: the seed's ``request.data`` fields, checked."""

    fecha = serializers.DateField()
    hora = serializers.TimeField()
    total_estimado = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)


@api_view(["POST"])
def crear_reserva(request: Request) -> Response:
    """The logged-in client books; everyone sees the booking, providers get a notice."""
    entrada = ReservaEntrada(data=request.data)
    entrada.is_valid(raise_exception=True)
    cliente = Cliente.objects.select_related("user").filter(user=request.user).first()
    if cliente is None:
        raise PermissionDenied("Solo un cliente puede crear reservas.")

    # From here on, the seed's view as written, on validated data.
    reserva = Reserva.objects.create(
        cliente=cliente,
        fecha=entrada.validated_data["fecha"],
        hora=entrada.validated_data["hora"],
        estado="pendiente",
        total_estimado=entrada.validated_data["total_estimado"],
    )

    # Emitir evento al WebSocket
    notifier.emit_event(
        "reserva:creada",
        {
            "reserva": {
                "id": reserva.id,
                "clienteId": reserva.cliente.id,
                "estado": reserva.estado,
                "fecha": str(reserva.fecha),
                "hora": str(reserva.hora),
                "totalEstimado": float(reserva.total_estimado),
            }
        },
    )

    # Notificar al proveedor
    notifier.notify_role(
        "proveedor",
        "nueva_reserva",
        {"reservaId": reserva.id, "clienteNombre": reserva.cliente.user.username},
    )

    return Response({"success": True, "reserva_id": reserva.id})


def client_js_url(bridge_url: str) -> str:
    """``http://host:4000/client.js`` for the bridge whose WebSocket is ``bridge_url``."""
    parts = urlsplit(bridge_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/client.js", "", ""))


@login_required
def live(request: HttpRequest) -> HttpResponse:
    """Live events for the logged-in user, through the bridge's ``/client.js``."""
    bridge_url = producer_settings().bridge_url
    return render(
        request,
        "api_rest/live.html",
        {
            "bridge": {"clientJs": client_js_url(bridge_url), "url": bridge_url},
            "roles": roles_of(request.user),
            "es_cliente": Cliente.objects.filter(user=request.user).exists(),
        },
    )
