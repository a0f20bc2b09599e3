from django.apps import AppConfig

from api_rest import signals
from producer import model_events


class ApiRestConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "api_rest"
    verbose_name = "Reservas"

    def ready(self) -> None:
        # The seed's signals.py, declared: each save sends its event once the
        # transaction commits (nothing if it rolls back).
        model_events(
            self.get_model("Reserva"),
            created="reserva:creada",
            updated="reserva:actualizada",
            payload=signals.reserva,
        )
        model_events(
            self.get_model("Servicio"), created="servicio:creado", payload=signals.servicio
        )
        model_events(
            self.get_model("Calificacion"),
            created="calificacion:creada",
            payload=signals.calificacion,
        )
        model_events(self.get_model("Cliente"), created="cliente:nuevo", payload=signals.cliente)
