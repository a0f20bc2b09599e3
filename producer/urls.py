"""``path("event-bridge/", include("producer.urls"))`` adds ``token/``."""

from django.urls import path

from producer.views import token

app_name = "producer"
urlpatterns = [path("token/", token, name="token")]
