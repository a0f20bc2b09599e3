"""Every model in the admin; saving there sends the same events as saving anywhere else."""

from django.contrib import admin

from api_rest.models import Calificacion, Categoria, Cliente, Pago, Proveedor, Reserva, Servicio


@admin.register(Cliente)
class ClienteAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "telefono")
    search_fields = ("user__username", "user__email")


@admin.register(Proveedor)
class ProveedorAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "nombre_comercial")
    search_fields = ("user__username", "nombre_comercial")


@admin.register(Categoria)
class CategoriaAdmin(admin.ModelAdmin):
    list_display = ("id", "nombre")
    search_fields = ("nombre",)


@admin.register(Servicio)
class ServicioAdmin(admin.ModelAdmin):
    list_display = ("id", "nombre_servicio", "precio", "proveedor", "categoria", "activo")
    list_filter = ("categoria", "activo")
    search_fields = ("nombre_servicio",)


class PagoInline(admin.TabularInline):
    model = Pago
    extra = 0


@admin.register(Reserva)
class ReservaAdmin(admin.ModelAdmin):
    list_display = ("id", "cliente", "fecha", "hora", "estado", "total_estimado")
    list_filter = ("estado", "fecha")
    date_hierarchy = "fecha"
    inlines = (PagoInline,)


@admin.register(Calificacion)
class CalificacionAdmin(admin.ModelAdmin):
    list_display = ("id", "servicio", "cliente", "puntuacion")
    list_filter = ("puntuacion",)


@admin.register(Pago)
class PagoAdmin(admin.ModelAdmin):
    list_display = ("id", "reserva", "monto", "estado", "metodo")
    list_filter = ("estado", "metodo")
