"""The placement advisor page: a GET form (so a result is a shareable URL) over ``marketplace.advisor``."""

from django import forms
from django.shortcuts import render

from fabric.choices import PortState
from fabric.models import Metro, Port
from fabric.pricing import BANDWIDTH_TIERS_MBPS
from hub.errors import DomainError
from hub.roles import Action
from hub.views import OrgView
from marketplace import advisor
from marketplace.choices import Category
from marketplace.models import Offering


class AdvisorForm(forms.Form):
    category = forms.ChoiceField(choices=Category.choices, initial=Category.GPU_CLOUD)
    data_metro = forms.ChoiceField(label="My data is in", choices=())
    accelerator = forms.CharField(max_length=40, required=False, help_text="GPU clouds, e.g. H100")
    min_gpus = forms.IntegerField(label="At least GPUs per instance", min_value=1, max_value=10_000, required=False)
    latency_budget_ms = forms.FloatField(
        label="Latency budget (ms, round trip)", min_value=0.1, max_value=10_000, required=False
    )
    allowed_zones = forms.MultipleChoiceField(
        label="Allowed sovereignty zones", required=False, widget=forms.CheckboxSelectMultiple, help_text="None: any."
    )
    bandwidth_mbps = forms.TypedChoiceField(
        label="Interconnect bandwidth",
        coerce=int,
        initial=1_000,
        choices=[(tier, f"{tier // 1000} Gbps" if tier >= 1000 else f"{tier} Mbps") for tier in BANDWIDTH_TIERS_MBPS],
    )
    quantity = forms.DecimalField(
        min_value=0.0001,
        max_digits=12,
        decimal_places=4,
        initial=1,
        help_text="Instances for hourly prices; else units of the price unit a month",
    )
    hours_per_month = forms.IntegerField(min_value=1, max_value=744, initial=advisor.HOURS_PER_MONTH)
    max_monthly_cost = forms.DecimalField(
        label="Monthly budget (USD)", min_value=0, max_digits=14, decimal_places=2, required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["data_metro"].choices = [(m.code, f"{m.code} · {m.name}") for m in Metro.objects.all()]
        self.fields["allowed_zones"].choices = [(zone, zone) for zone in advisor.sovereignty_zones()]


class AdvisorView(OrgView):
    required_action = Action.MARKETPLACE_VIEW
    template_name = "marketplace/advisor.html"

    def get(self, request):
        advice = None
        status = 200
        if "category" in request.GET:
            form = AdvisorForm(request.GET)
            if form.is_valid():
                try:
                    advice = advisor.advise(advisor.requirements(**form.cleaned_data))
                except DomainError as exc:
                    form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            if not form.is_valid():
                status = 400
        else:
            form = AdvisorForm(initial={"data_metro": self._my_metro(request)})
        accelerators = (
            Offering.objects.published()
            .exclude(accelerator="")
            .order_by("accelerator")
            .values_list("accelerator", flat=True)
            .distinct()
        )
        return render(
            request,
            self.template_name,
            {"form": form, "advice": advice, "accelerators": accelerators},
            status=status,
        )

    @staticmethod
    def _my_metro(request) -> str:
        """The metro of the organization's first active port: where its data most likely is."""
        port = Port.objects.for_org(request.org).filter(state=PortState.ACTIVE).select_related("metro").first()
        return port.metro.code if port else "FR"
