"""Forms of the marketplace pages for enterprises (the provider console has its own)."""

from django import forms

from fabric.models import Port
from marketplace.choices import ApprovalMode
from marketplace.models import AccessPoint


class OrderForm(forms.Form):
    """Connect to an offering: from one of my ports to one of its access points."""

    a_port = forms.ModelChoiceField(
        label="From my port", queryset=Port.objects.none(), to_field_name="public_id", empty_label=None
    )
    access_point = forms.ModelChoiceField(
        label="To the access point", queryset=AccessPoint.objects.none(), to_field_name="public_id", empty_label=None
    )
    bandwidth_mbps = forms.TypedChoiceField(label="Bandwidth", coerce=int, choices=())
    purchase_order = forms.CharField(label="Purchase order", max_length=64, required=False)

    def __init__(self, *args, a_ports, access_points, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["a_port"].queryset = a_ports
        self.fields["a_port"].label_from_instance = lambda port: (
            f"{port.metro.code} · {port.name} ({port.available_mbps:,} Mbps free)"
        )
        self.fields["access_point"].queryset = access_points
        self.fields["access_point"].label_from_instance = _access_point_label
        bandwidths = sorted({b for ap in access_points for b in ap.allowed_bandwidths_mbps})
        self.fields["bandwidth_mbps"].choices = [(b, _bandwidth_label(b)) for b in bandwidths]
        self.fields["bandwidth_mbps"].help_text = "Each access point allows some of these; the quote says if not."


def _access_point_label(access_point: AccessPoint) -> str:
    metro = access_point.port.metro
    approval = "approved at once" if access_point.approval_mode == ApprovalMode.AUTOMATIC else "the provider approves"
    return f"{metro.code} · {metro.name} ({approval})"


def _bandwidth_label(mbps: int) -> str:
    return f"{mbps // 1000:,} Gbps" if mbps >= 1000 and mbps % 1000 == 0 else f"{mbps:,} Mbps"
