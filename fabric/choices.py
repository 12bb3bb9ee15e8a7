from django.db import models


class Region(models.TextChoices):
    AMER = "AMER", "Americas"
    EMEA = "EMEA", "Europe, Middle East and Africa"
    APAC = "APAC", "Asia-Pacific"
