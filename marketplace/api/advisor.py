"""``POST /api/v1/advisor/``: the placement advisor for scripts (the portal page calls the same code)."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from fabric.api.serializers import QuoteSerializer
from fabric.pricing import MAX_BANDWIDTH_MBPS
from hub.roles import Action
from marketplace import advisor
from marketplace.choices import Category


class AdvisorRequestSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=Category.choices)
    data_metro = serializers.CharField(max_length=4, help_text="Metro code where your data is, e.g. FR.")
    accelerator = serializers.CharField(
        max_length=40, required=False, allow_blank=True, default="", help_text="GPU clouds only, e.g. H100."
    )
    min_gpus = serializers.IntegerField(
        min_value=1,
        max_value=10_000,
        required=False,
        allow_null=True,
        help_text="GPU clouds: at least this many per instance.",
    )
    latency_budget_ms = serializers.FloatField(
        min_value=0.1,
        max_value=10_000,
        required=False,
        allow_null=True,
        help_text="Estimated round trip, data metro to access point.",
    )
    allowed_zones = serializers.ListField(
        child=serializers.CharField(max_length=8),
        required=False,
        default=list,
        max_length=100,
        help_text="Sovereignty zones the access point may be in (e.g. EU, UK, US); empty: any.",
    )
    bandwidth_mbps = serializers.IntegerField(min_value=1, max_value=MAX_BANDWIDTH_MBPS, default=1_000)
    quantity = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        default=1,
        help_text="Instances for hourly prices; otherwise units of the offering's price unit per month.",
    )
    hours_per_month = serializers.IntegerField(min_value=1, max_value=744, default=advisor.HOURS_PER_MONTH)
    max_monthly_cost = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
        allow_null=True,
        help_text="USD per month.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=advisor.MAX_LIMIT, default=20)
    excluded_limit = serializers.IntegerField(min_value=0, max_value=advisor.MAX_EXCLUDED_LIMIT, default=200)


class _OfferingRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    provider = serializers.CharField()
    price_amount = serializers.DecimalField(max_digits=12, decimal_places=4)
    price_unit = serializers.CharField()
    currency = serializers.CharField()


class PlacementSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    offering = _OfferingRefSerializer()
    access_point = serializers.UUIDField()
    metro = serializers.CharField()
    sovereignty_zone = serializers.CharField()
    estimated_rtt_ms = serializers.FloatField()
    bandwidth_mbps = serializers.IntegerField()
    offering_monthly = serializers.DecimalField(max_digits=14, decimal_places=2)
    offering_price = serializers.CharField(help_text="How the offering's monthly figure was computed.")
    interconnect = QuoteSerializer()
    total_monthly = serializers.DecimalField(max_digits=14, decimal_places=2)
    one_off = serializers.DecimalField(max_digits=14, decimal_places=2)


class ExcludedSerializer(serializers.Serializer):
    offering = _OfferingRefSerializer()
    code = serializers.ChoiceField(choices=[(code.value, label) for code, label in advisor.EXCLUSION_LABELS.items()])
    reason = serializers.CharField()


class AdviceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    data_metro = serializers.CharField()
    candidates = serializers.IntegerField(
        help_text="Offerings meeting every requirement; `ranked` lists the first `limit`."
    )
    ranked = PlacementSerializer(many=True)
    excluded_total = serializers.IntegerField()
    excluded_counts = serializers.DictField(child=serializers.IntegerField(), help_text="Excluded offerings per code.")
    excluded = ExcludedSerializer(many=True, help_text="The first `excluded_limit` exclusions, by code then name.")


def _offering(offering) -> dict:
    return {
        "id": offering.public_id,
        "name": offering.name,
        "provider": offering.provider.name,
        "price_amount": offering.price_amount,
        "price_unit": offering.price_unit,
        "currency": offering.currency,
    }


def advice_as_dict(advice: advisor.Advice) -> dict:
    return {
        "currency": "USD",
        "data_metro": advice.requirements.data_metro.code,
        "candidates": advice.candidates,
        "ranked": [
            {
                "rank": rank,
                "offering": _offering(p.offering),
                "access_point": p.access_point.public_id,
                "metro": p.leg.metro.code,
                "sovereignty_zone": p.leg.metro.sovereignty_zone,
                "estimated_rtt_ms": round(p.leg.latency_ms, 2),
                "bandwidth_mbps": p.bandwidth_mbps,
                "offering_monthly": p.offering_monthly,
                "offering_price": p.offering_line,
                "interconnect": p.interconnect.as_dict(),
                "total_monthly": p.total_monthly,
                "one_off": p.one_off,
            }
            for rank, p in enumerate(advice.placements, start=1)
        ],
        "excluded_total": advice.excluded_total,
        "excluded_counts": advice.excluded_counts,
        "excluded": [{"offering": _offering(e.offering), "code": e.code, "reason": e.reason} for e in advice.excluded],
    }


class AdvisorView(APIView):
    """Rank published offerings by total monthly cost (offering + interconnect) for your requirements,
    and say why every other offering of the category was left out."""

    required_action = Action.MARKETPLACE_VIEW

    @extend_schema(
        request=AdvisorRequestSerializer,
        responses={200: AdviceSerializer},
        examples=[
            OpenApiExample(
                "8x H100 near Frankfurt, EU only",
                request_only=True,
                value={
                    "category": "GPU_CLOUD",
                    "accelerator": "H100",
                    "min_gpus": 8,
                    "data_metro": "FR",
                    "latency_budget_ms": 20,
                    "allowed_zones": ["EU"],
                },
            )
        ],
    )
    def post(self, request):
        payload = AdvisorRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        limit, excluded_limit = data.pop("limit"), data.pop("excluded_limit")
        requirements = advisor.requirements(**data)
        advice = advisor.advise(requirements, limit=limit, excluded_limit=excluded_limit)
        return Response(AdviceSerializer(advice_as_dict(advice)).data)
