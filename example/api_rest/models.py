"""The seed's marketplace: clients book the services providers offer, then rate and pay."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Cliente(models.Model):
    """A user who books services."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cliente"
    )
    telefono = models.CharField(max_length=30, blank=True)

    class Meta:
        verbose_name_plural = "clientes"

    def __str__(self) -> str:
        return self.user.get_username()


class Proveedor(models.Model):
    """A user who offers services."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="proveedor"
    )
    nombre_comercial = models.CharField(max_length=120, blank=True)

    class Meta:
        verbose_name_plural = "proveedores"

    def __str__(self) -> str:
        return self.nombre_comercial or self.user.get_username()


class Categoria(models.Model):
    nombre = models.CharField(max_length=80, unique=True)

    class Meta:
        verbose_name = "categoría"
        verbose_name_plural = "categorías"

    def __str__(self) -> str:
        return self.nombre


class Servicio(models.Model):
    nombre_servicio = models.CharField(max_length=120)
    descripcion = models.TextField(blank=True)
    precio = models.DecimalField(max_digits=10, decimal_places=2)
    proveedor = models.ForeignKey(Proveedor, on_delete=models.CASCADE, related_name="servicios")
    categoria = models.ForeignKey(Categoria, on_delete=models.PROTECT, related_name="servicios")
    activo = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.nombre_servicio


class Reserva(models.Model):
    class Estado(models.TextChoices):
        PENDIENTE = "pendiente"
        CONFIRMADA = "confirmada"
        CANCELADA = "cancelada"
        COMPLETADA = "completada"

    cliente = models.ForeignKey(Cliente, on_delete=models.CASCADE, related_name="reservas")
    fecha = models.DateField()
    hora = models.TimeField()
    estado = models.CharField(max_length=20, choices=Estado.choices, default=Estado.PENDIENTE)
    total_estimado = models.DecimalField(max_digits=10, decimal_places=2)
    creada = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-creada",)

    def __str__(self) -> str:
        return f"Reserva {self.pk} ({self.estado})"


class Calificacion(models.Model):
    servicio = models.ForeignKey(Servicio, on_delete=models.CASCADE, related_name="calificaciones")
    cliente = models.ForeignKey(
        Cliente, on_delete=models.SET_NULL, null=True, blank=True, related_name="calificaciones"
    )
    puntuacion = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comentario = models.TextField(blank=True)

    class Meta:
        verbose_name = "calificación"
        verbose_name_plural = "calificaciones"

    def __str__(self) -> str:
        return f"{self.puntuacion}/5 para {self.servicio}"


class Pago(models.Model):
    class Estado(models.TextChoices):
        PENDIENTE = "pendiente"
        PROCESADO = "procesado"
        RECHAZADO = "rechazado"

    class Metodo(models.TextChoices):
        TARJETA = "tarjeta"
        TRANSFERENCIA = "transferencia"
        EFECTIVO = "efectivo"

    reserva = models.ForeignKey(Reserva, on_delete=models.CASCADE, related_name="pagos")
    monto = models.DecimalField(max_digits=10, decimal_places=2)
    estado = models.CharField(max_length=20, choices=Estado.choices, default=Estado.PENDIENTE)
    metodo = models.CharField(max_length=20, choices=Metodo.choices)
    creado = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Pago {self.pk} de la reserva {self.reserva_id}"
