from rest_framework import serializers

from fabric.models import Metro


class MetroSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metro
        fields = ["code", "name", "country", "region", "sovereignty_zone", "latitude", "longitude"]
        read_only_fields = fields
