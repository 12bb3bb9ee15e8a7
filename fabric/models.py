from django.db import models
from django.db.models import Q

from fabric.choices import Region


class Metro(models.Model):
    """A data-center metro where ports can be ordered. Reference data shared by all organizations."""

    code = models.CharField(max_length=4, unique=True)
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=4, choices=Region.choices)
    sovereignty_zone = models.CharField(max_length=8, help_text="EU, UK, CH, or the country code")
    latitude = models.FloatField()
    longitude = models.FloatField()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(latitude__gte=-90, latitude__lte=90), name="metro_latitude_range"),
            models.CheckConstraint(condition=Q(longitude__gte=-180, longitude__lte=180), name="metro_longitude_range"),
            models.CheckConstraint(condition=Q(region__in=Region.values), name="metro_region_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"
