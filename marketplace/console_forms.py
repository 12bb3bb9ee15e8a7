"""Forms of the provider console. They only shape input; the rules live in ``marketplace.services``.

The offering form grows one field per attribute of the offering's category (``attr_<name>``, from the
schema in ``marketplace.attributes``), so a bad attribute is reported next to its own field.
"""

from django import forms

from fabric.models import Port
from fabric.pricing import BANDWIDTH_TIERS_MBPS
from marketplace.attributes import SCHEMAS
from marketplace.choices import ApprovalMode, PriceUnit

ATTRIBUTE_PREFIX = "attr_"


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


_WORDS = {"gpu": "GPU", "vcpus": "vCPUs", "ram": "RAM", "sla": "SLA", "mtok": "million tokens"}
_UNITS = {"gb": "GB", "gbps": "Gbps", "mbps": "Mbps", "pct": "%"}


def attribute_label(name: str) -> str:
    """The schema's names, readable: ``gpu_memory_gb`` -> ``GPU memory (GB)``, ``egress_price_per_gb`` ->
    ``Egress price per GB``."""
    parts = name.split("_")
    words = []
    for i, part in enumerate(parts):
        if part in _UNITS:
            words.append(_UNITS[part] if i and parts[i - 1] == "per" else f"({_UNITS[part]})")
        else:
            words.append(_WORDS.get(part, part))
    label = " ".join(words)
    return label[0].upper() + label[1:] if words[0] == parts[0] else label


def _attribute_field(name: str, spec) -> forms.Field:
    label = attribute_label(name)
    options = {"label": label, "required": False, "help_text": spec.help}
    if spec.required:
        options["label"] = f"{label} (required)"
    if spec.kind == "int":
        return forms.IntegerField(**options)
    if spec.kind == "number":
        return forms.FloatField(**options)
    return forms.CharField(max_length=200, **options)


class OfferingForm(forms.Form):
    """Create or edit a listing of one category; ``attributes`` come back as one dict."""

    name = forms.CharField(max_length=150)
    slug = forms.SlugField(
        max_length=120, required=False, help_text="Part of the offering's address. Empty: from the name."
    )
    summary = forms.CharField(max_length=300, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    price_amount = forms.DecimalField(label="Price", max_digits=12, decimal_places=4)
    price_unit = forms.ChoiceField(choices=PriceUnit.choices, initial=PriceUnit.HOUR)
    currency = forms.CharField(max_length=3, initial="USD", help_text="ISO 4217, e.g. USD")
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. H100, training")
    compliance = forms.CharField(required=False, help_text="Comma-separated, e.g. SOC 2, GDPR")

    def __init__(self, *args, category: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.category = category
        self.attribute_names = list(SCHEMAS[category])
        for name, spec in SCHEMAS[category].items():
            self.fields[ATTRIBUTE_PREFIX + name] = _attribute_field(name, spec)

    @classmethod
    def initial_from(cls, offering) -> dict:
        initial = {
            key: getattr(offering, key)
            for key in ("name", "slug", "summary", "description", "price_amount", "price_unit", "currency")
        }
        initial["tags"] = ", ".join(offering.tags)
        initial["compliance"] = ", ".join(offering.compliance)
        initial |= {ATTRIBUTE_PREFIX + name: value for name, value in offering.attributes.items()}
        return initial

    def attribute_fields(self):
        return [self[ATTRIBUTE_PREFIX + name] for name in self.attribute_names]

    def detail_fields(self):
        return [self[name] for name in self.fields if not name.startswith(ATTRIBUTE_PREFIX)]

    def service_kwargs(self) -> dict:
        """The cleaned data in the shape ``offering_create`` / ``offering_update`` take."""
        data = self.cleaned_data
        attributes = {
            name: data[ATTRIBUTE_PREFIX + name]
            for name in self.attribute_names
            if data.get(ATTRIBUTE_PREFIX + name) not in (None, "")
        }
        return {
            "name": data["name"],
            "slug": data["slug"],
            "summary": data["summary"],
            "description": data["description"],
            "price_amount": data["price_amount"],
            "price_unit": data["price_unit"],
            "currency": data["currency"],
            "tags": _comma_list(data["tags"]),
            "compliance": _comma_list(data["compliance"]),
            "attributes": attributes,
        }

    def add_service_error(self, exc) -> None:
        """Put a service's ``DomainError`` next to the field it names (``attributes.x`` -> ``attr_x``)."""
        field = exc.field or ""
        if field.startswith("attributes."):
            field = ATTRIBUTE_PREFIX + field.removeprefix("attributes.")
        self.add_error(field if field in self.fields else None, exc.message)


class AccessPointForm(forms.Form):
    port = forms.ModelChoiceField(queryset=Port.objects.none(), to_field_name="public_id", label="Your port")
    allowed_bandwidths_mbps = forms.TypedMultipleChoiceField(
        label="Bandwidths customers may order",
        coerce=int,
        choices=[(tier, f"{tier // 1000} Gbps" if tier >= 1000 else f"{tier} Mbps") for tier in BANDWIDTH_TIERS_MBPS],
        widget=forms.CheckboxSelectMultiple,
        initial=[1_000, 10_000],
    )
    approval_mode = forms.ChoiceField(
        choices=ApprovalMode.choices, initial=ApprovalMode.MANUAL, widget=forms.RadioSelect
    )

    def __init__(self, *args, ports, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["port"].queryset = ports
        self.fields["port"].label_from_instance = lambda port: (
            f"{port.metro.code} · {port.name} ({port.get_speed_mbps_display()})"
        )


class ApproveForm(forms.Form):
    z_vlan = forms.IntegerField(label="Your VLAN", min_value=2, max_value=4094)


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=500)


class ProviderProfileForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=60, required=False, help_text="Empty: from the name.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    website = forms.URLField(required=False, assume_scheme="https")
    certifications = forms.CharField(required=False, help_text="Comma-separated, e.g. SOC 2, ISO 27001")
    hq_country = forms.CharField(max_length=2, required=False, label="HQ country", help_text="e.g. DE")

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["certifications"] = _comma_list(data["certifications"])
        return data
