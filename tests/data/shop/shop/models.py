from django.db import models


class Order(models.Model):
    customer_id = models.IntegerField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    shipped = models.BooleanField(default=False)
