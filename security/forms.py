"""Forms of the security pages. They check shapes; the services check the rules."""

import json

from django import forms

from security.choices import ContentKind, ScanAction, Severity
from security.detectors import DETECTORS


class PolicyForm(forms.Form):
    allowed_zones = forms.CharField(
        required=False,
        label="Allowed sovereignty zones",
        help_text="Comma-separated zones, e.g. EU, UK. Empty allows every zone.",
    )
    blocked_categories = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Blocked offering categories"
    )
    approval_bandwidth_mbps = forms.IntegerField(
        required=False,
        min_value=1,
        label="Approval above (Mbps)",
        help_text="Connections above this bandwidth wait for an org admin. Empty: never.",
    )

    def __init__(self, *args, categories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["blocked_categories"].choices = categories

    def clean_allowed_zones(self):
        raw = self.cleaned_data["allowed_zones"]
        return [zone.strip().upper() for zone in raw.replace(";", ",").split(",") if zone.strip()]


class PlaygroundForm(forms.Form):
    profile = forms.ChoiceField(label="Scan profile")
    kind = forms.ChoiceField(choices=ContentKind.choices, initial=ContentKind.PROMPT, label="The text is a")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), label="Text to scan", strip=False)
    context = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Retrieved context (optional)",
        help_text="A document the model would read alongside the prompt.",
        strip=False,
    )
    app = forms.CharField(required=False, max_length=100, initial="playground")

    def __init__(self, *args, profiles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [(p.name, p.name + (" (default)" if p.is_default else "")) for p in profiles]


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=60)
    description = forms.CharField(max_length=300, required=False)
    detectors = forms.MultipleChoiceField(
        choices=[(name, name.replace("_", " ")) for name in DETECTORS], widget=forms.CheckboxSelectMultiple
    )
    action_critical = forms.ChoiceField(choices=ScanAction.choices, label="Critical findings")
    action_high = forms.ChoiceField(choices=ScanAction.choices, label="High findings")
    action_medium = forms.ChoiceField(choices=ScanAction.choices, label="Medium findings")
    action_low = forms.ChoiceField(choices=ScanAction.choices, label="Low findings")
    thresholds = forms.CharField(
        required=False,
        label="Thresholds (JSON)",
        help_text='Lowest score that counts per detector, e.g. {"prompt_injection": 0.7}.',
    )
    url_allow_domains = forms.CharField(required=False, label="Allowed URL domains", help_text="Comma-separated.")
    url_block_domains = forms.CharField(required=False, label="Blocked URL domains", help_text="Comma-separated.")
    is_default = forms.BooleanField(required=False, label="Default profile")

    SEVERITY_FIELDS = {
        Severity.CRITICAL: "action_critical",
        Severity.HIGH: "action_high",
        Severity.MEDIUM: "action_medium",
        Severity.LOW: "action_low",
    }

    @classmethod
    def initial_for(cls, profile) -> dict:
        return {
            "name": profile.name,
            "description": profile.description,
            "detectors": profile.detectors,
            "thresholds": json.dumps(profile.thresholds) if profile.thresholds else "",
            "url_allow_domains": ", ".join(profile.url_allow_domains),
            "url_block_domains": ", ".join(profile.url_block_domains),
            "is_default": profile.is_default,
            **{field: profile.severity_actions.get(sev, "") for sev, field in cls.SEVERITY_FIELDS.items()},
        }

    def clean_thresholds(self):
        raw = self.cleaned_data["thresholds"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError("Write the thresholds as a JSON object.") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("Write the thresholds as a JSON object.")
        return value

    def _domains(self, name):
        return [d.strip() for d in self.cleaned_data[name].split(",") if d.strip()]

    def clean_url_allow_domains(self):
        return self._domains("url_allow_domains")

    def clean_url_block_domains(self):
        return self._domains("url_block_domains")

    def changes(self) -> dict:
        """The cleaned form as keyword arguments of the profile services."""
        data = self.cleaned_data
        return {
            "description": data["description"],
            "detectors": data["detectors"],
            "thresholds": data["thresholds"],
            "severity_actions": {sev: data[field] for sev, field in self.SEVERITY_FIELDS.items()},
            "url_allow_domains": data["url_allow_domains"],
            "url_block_domains": data["url_block_domains"],
            "is_default": data["is_default"],
        }


class AlertNoteForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000, label="Note")
