from django import forms

from fabric.choices import PortSpeed
from fabric.models import Metro, Port


class PortOrderForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. fr-core-1")
    metro = forms.ModelChoiceField(queryset=Metro.objects.all(), to_field_name="code")
    speed_mbps = forms.TypedChoiceField(label="Speed", choices=PortSpeed.choices, coerce=int, initial=PortSpeed.G10)
    auto_approve = forms.BooleanField(
        required=False, label="Approve inbound connection requests automatically", help_text="For provider ports."
    )


class PortSettingsForm(forms.Form):
    name = forms.CharField(max_length=100)
    auto_approve = forms.BooleanField(required=False, label="Approve inbound connection requests automatically")


class ConnectionRequestForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    a_port = forms.ModelChoiceField(label="A side (your port)", queryset=Port.objects.none(), to_field_name="public_id")
    z_port = forms.ModelChoiceField(label="Z side", queryset=Port.objects.none(), to_field_name="public_id")
    bandwidth_mbps = forms.IntegerField(label="Bandwidth (Mbps)", min_value=1, initial=1000)
    a_vlan = forms.IntegerField(
        label="A-side VLAN", min_value=2, max_value=4094, required=False, help_text="Empty: allocate one."
    )
    purchase_order = forms.CharField(max_length=64, required=False)
    redundant = forms.BooleanField(required=False, label="Add a SECONDARY connection on other ports (redundant pair)")
    secondary_a_port = forms.ModelChoiceField(
        label="Secondary A side", queryset=Port.objects.none(), to_field_name="public_id", required=False
    )
    secondary_z_port = forms.ModelChoiceField(
        label="Secondary Z side", queryset=Port.objects.none(), to_field_name="public_id", required=False
    )

    def __init__(self, *args, a_ports, z_ports, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("a_port", "secondary_a_port"):
            self.fields[name].queryset = a_ports
            self.fields[name].label_from_instance = lambda port: (
                f"{port.metro.code} · {port.name} ({port.available_mbps:,} Mbps free)"
            )
        for name in ("z_port", "secondary_z_port"):
            self.fields[name].queryset = z_ports
            self.fields[name].label_from_instance = lambda port: (
                f"{port.metro.code} · {port.organization.name} · {port.name}"
            )

    def clean(self):
        data = super().clean()
        if data.get("redundant") and not (data.get("secondary_a_port") and data.get("secondary_z_port")):
            raise forms.ValidationError("A redundant pair needs a secondary A side and Z side.")
        return data


class ApproveForm(forms.Form):
    z_vlan = forms.IntegerField(
        label="Your VLAN", min_value=2, max_value=4094, required=False, help_text="Empty: allocate one."
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.TextInput(attrs={"placeholder": "Why? The requester will see it."})
    )


class BandwidthForm(forms.Form):
    bandwidth_mbps = forms.IntegerField(label="New bandwidth (Mbps)", min_value=1)
