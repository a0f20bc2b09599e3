from django.contrib import admin
from django.urls import include, path

from api_rest.views import crear_reserva, live

urlpatterns = [
    path("", live, name="live"),
    path("api/reservas/", crear_reserva, name="crear_reserva"),
    path("event-bridge/", include("producer.urls")),  # token/ -> producer:token
    path("accounts/", include("django.contrib.auth.urls")),  # login/, logout/
    path("admin/", admin.site.urls),
]
