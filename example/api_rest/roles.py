"""The roles of the example: each is a Django group, and the token view sends group names."""

CLIENTE = "cliente"
PROVEEDOR = "proveedor"
ADMIN = "admin"

ROLES = (CLIENTE, PROVEEDOR, ADMIN)
