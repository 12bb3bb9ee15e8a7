"""Security pages: the threat dashboard, alerts, the scan playground, the policy and scan profiles.
Every write calls a service of ``security.services``; reads come from selectors and ``dashboard``."""

import itertools
import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from hub.errors import DomainError
from hub.models import Membership, User
from hub.roles import Action, role_allows
from hub.views import OrgView, csv_response
from marketplace.choices import Category
from security import dashboard, selectors, services
from security.choices import ALERT_TRANSITIONS, ContentKind, category_label
from security.detectors import DETECTORS, SENSITIVE_DETECTORS
from security.detectors.base import mask_spans
from security.filters import AlertFilter
from security.forms import AlertNoteForm, PlaygroundForm, PolicyForm, ProfileForm
from security.models import Alert, ScanProfile


def _form_error(form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _can_manage(request) -> bool:
    return role_allows(request.membership.role, Action.SECURITY_MANAGE)


def _members(org):
    return User.objects.filter(pk__in=Membership.objects.for_org(org).values("user_id")).order_by("email")


# --- Dashboard -------------------------------------------------------------------------------
class DashboardView(OrgView):
    required_action = Action.SECURITY_VIEW

    def get(self, request):
        window = dashboard.window_for(request.GET.get("window"))
        data = dashboard.summary(org=request.org, window=window)
        filterset = AlertFilter(request.GET, queryset=selectors.alert_list(org=request.org), request=request)
        context = {
            "window": window,
            "windows": dashboard.WINDOWS.values(),
            "data": data,
            "charts": dashboard.json_island("threatdash-charts", dashboard.charts(data)),
            "filter": filterset,
            **_live_context(filterset),
            "refresh_seconds": dashboard.live_refresh_seconds(),
            "can_manage": _can_manage(request),
        }
        return render(request, "security/dashboard.html", context)


LIVE_FIELDS = ("public_id", "last_seen", "severity", "status", "title", "category", "count", "connection__name")


def _live_rows(filterset):
    alerts = filterset.qs if filterset.is_valid() else Alert.objects.none()
    # Only what the table shows: not the evidence, nor the scan's findings of ``alert_list``.
    alerts = alerts.select_related(None).select_related("connection").only(*LIVE_FIELDS)
    return list(alerts.order_by("-last_seen", "-id")[: dashboard.LIVE_ROWS])


def _live_context(filterset) -> dict:
    """The live table's rows; each row links to ``alerts_url`` + its id (the alert's page)."""
    return {"alerts": _live_rows(filterset), "alerts_url": reverse("security:alert-list"), "now": timezone.now()}


class DashboardLiveView(OrgView):
    """The live table alone (htmx refresh every few seconds, or after a filter change)."""

    required_action = Action.SECURITY_VIEW

    def get(self, request):
        filterset = AlertFilter(request.GET, queryset=selectors.alert_list(org=request.org), request=request)
        return render(request, "security/partials/live_table.html", _live_context(filterset))


class DashboardExportView(OrgView):
    """The alerts of the chosen window (and filters) as CSV."""

    required_action = Action.SECURITY_VIEW
    columns = [
        "id",
        "first_seen",
        "last_seen",
        "severity",
        "status",
        "category",
        "source",
        "title",
        "count",
        "connection",
        "assignee",
        "incident",
    ]

    def get(self, request):
        window = dashboard.window_for(request.GET.get("window"))
        since = timezone.now() - window.span
        queryset = selectors.alert_list(org=request.org).filter(last_seen__gte=since)
        filterset = AlertFilter(request.GET, queryset=queryset, request=request)
        if not filterset.is_valid():
            return render(request, "security/partials/bad_filter.html", {"filter": filterset}, status=400)
        return csv_response(
            f"alerts-{request.org.slug}-{window.key}",
            self.columns,
            (
                [
                    a.public_id,
                    a.first_seen.isoformat(),
                    a.last_seen.isoformat(),
                    a.severity,
                    a.status,
                    a.category,
                    a.source,
                    a.title,
                    a.count,
                    a.connection.name if a.connection else "",
                    a.assignee.email if a.assignee else "",
                    a.incident.public_id if a.incident else "",
                ]
                for a in filterset.qs.order_by("-last_seen", "-id").iterator(chunk_size=2000)
            ),
        )


# --- Alerts ----------------------------------------------------------------------------------
class AlertListView(OrgView):
    required_action = Action.SECURITY_VIEW
    page_size = 50

    def get(self, request):
        filterset = AlertFilter(request.GET, queryset=selectors.alert_list(org=request.org), request=request)
        alerts = filterset.qs if filterset.is_valid() else Alert.objects.none()
        raw_page = request.GET.get("page", "1")
        page = max(int(raw_page), 1) if raw_page.isdigit() else 1
        start = (page - 1) * self.page_size
        rows = list(alerts.order_by("-last_seen", "-id")[start : start + self.page_size + 1])
        params = request.GET.copy()
        params.pop("page", None)
        context = {
            "filter": filterset,
            "alerts": rows[: self.page_size],
            "page": page,
            "has_next": len(rows) > self.page_size,
            "query": params.urlencode(),
            "can_manage": _can_manage(request),
            "members": _members(request.org),
            "bulk_actions": services.BULK_ACTIONS,
        }
        template = "security/alert_list.html#alert-table" if request.htmx else "security/alert_list.html"
        return render(request, template, context)


class AlertBulkView(OrgView):
    """Acknowledge, resolve, suppress or assign the ticked alerts. Naming an alert that is not the
    organization's answers 404 and changes nothing."""

    required_action = Action.SECURITY_MANAGE

    def post(self, request):
        ids = request.POST.getlist("alerts")
        action = request.POST.get("action", "")
        back = reverse("security:alert-list") + ("?" + request.POST["query"] if request.POST.get("query") else "")
        if not ids:
            messages.error(request, "Tick at least one alert.")
            return redirect(back)
        try:
            wanted = {uuid.UUID(value) for value in ids}
        except ValueError as exc:
            raise Http404("No such alert.") from exc
        alerts = list(selectors.alert_list(org=request.org).filter(public_id__in=wanted))
        if len(alerts) != len(wanted):
            raise Http404("No such alert.")
        assignee = None
        if action == "assign" and request.POST.get("assignee"):
            assignee = _members(request.org).filter(public_id=request.POST["assignee"]).first()
            if assignee is None:
                messages.error(request, "Choose a member of your organization to assign.")
                return redirect(back)
        try:
            result = services.alert_bulk(
                membership=request.membership,
                alerts=alerts,
                action=action,
                assignee=assignee,
                note=request.POST.get("note", ""),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect(back)
        text = f"{len(result.changed)} alert{'s' if len(result.changed) != 1 else ''} updated ({action})."
        if result.skipped:
            text += f" {len(result.skipped)} skipped: " + "; ".join(
                f"{a.title}: {why}" for a, why in result.skipped[:5]
            )
        messages.success(request, text)
        return redirect(back)


def _alert_context(request, alert, note_form=None):
    incident_alerts = (
        list(selectors.alert_list(org=request.org).filter(incident=alert.incident).order_by("first_seen"))
        if alert.incident_id
        else []
    )
    return {
        "alert": alert,
        "category_label": category_label(alert.category),
        "evidence": sorted(alert.evidence.items()) if isinstance(alert.evidence, dict) else [],
        "notes": alert.notes.all(),
        "incident_alerts": incident_alerts,
        "can_manage": _can_manage(request),
        "transitions": sorted(ALERT_TRANSITIONS.get(alert.status, ())),
        "members": _members(request.org),
        "note_form": note_form or AlertNoteForm(),
        "scan": alert.scan,
    }


class AlertDetailView(OrgView):
    required_action = Action.SECURITY_VIEW

    def get(self, request, alert_id):
        alert = self.get_org_object(selectors.alert_list(org=request.org), public_id=alert_id)
        return render(request, "security/alert_detail.html", _alert_context(request, alert))


class AlertActionView(OrgView):
    """acknowledge, resolve, suppress, assign or note one alert."""

    required_action = Action.SECURITY_MANAGE
    verbs = {
        "acknowledge": services.alert_acknowledge,
        "resolve": services.alert_resolve,
        "suppress": services.alert_suppress,
    }

    def post(self, request, alert_id, verb):
        alert = self.get_org_object(selectors.alert_list(org=request.org), public_id=alert_id)
        if verb not in (*self.verbs, "assign", "note"):
            raise Http404("No such action.")
        try:
            if verb == "note":
                form = AlertNoteForm(request.POST)
                if not form.is_valid():
                    return render(
                        request, "security/alert_detail.html", _alert_context(request, alert, form), status=400
                    )
                services.alert_add_note(membership=request.membership, alert=alert, body=form.cleaned_data["body"])
                messages.success(request, "Note added.")
            elif verb == "assign":
                assignee = None
                if request.POST.get("assignee"):
                    assignee = _members(request.org).filter(public_id=request.POST["assignee"]).first()
                    if assignee is None:
                        raise DomainError("Choose a member of your organization.")
                services.alert_assign(membership=request.membership, alert=alert, assignee=assignee)
                messages.success(request, f"Assigned to {assignee.email}." if assignee else "Unassigned.")
            else:
                alert = self.verbs[verb](membership=request.membership, alert=alert, note=request.POST.get("note", ""))
                messages.success(request, f"Alert {alert.get_status_display().lower()}.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("security:alert-detail", alert_id=alert.public_id)


# --- Playground ------------------------------------------------------------------------------
def _highlight(text: str, findings: list[dict]) -> list[tuple[str, list[dict]]]:
    """``text`` with sensitive spans masked, cut into segments each with the findings covering it."""
    masked = mask_spans(text, [(f["start"], f["end"]) for f in findings if f["detector"] in SENSITIVE_DETECTORS])
    cuts = sorted({0, len(masked), *(f["start"] for f in findings), *(f["end"] for f in findings)})
    segments = []
    for start, end in itertools.pairwise(cuts):
        if start >= end or end > len(masked):
            continue
        covering = [f for f in findings if f["start"] <= start and end <= f["end"]]
        segments.append((masked[start:end], covering))
    return segments


class PlaygroundView(OrgView):
    """Try a text against a profile. The scan is stored like any other (redacted), so scanning here
    needs the role that may scan."""

    required_action = Action.SECURITY_VIEW
    template_name = "security/playground.html"

    def _form(self, request, data=None):
        services.profile_default(org=request.org)
        return PlaygroundForm(data, profiles=selectors.profile_list(org=request.org))

    def get(self, request):
        return render(request, self.template_name, {"form": self._form(request), "can_manage": _can_manage(request)})

    def post(self, request):
        if not _can_manage(request):
            raise PermissionDenied("Your role in this organization does not allow this.")
        form = self._form(request, request.POST)
        context = {"form": form, "can_manage": True}
        if form.is_valid():
            data = form.cleaned_data
            contents = [services.ScanContent(kind=data["kind"], text=data["text"])]
            if data["context"]:
                contents.append(services.ScanContent(kind=ContentKind.CONTEXT, text=data["context"]))
            try:
                scan = services.scan_run(
                    membership=request.membership,
                    request=services.ScanRequest(contents=contents, profile=data["profile"], app=data["app"]),
                )
            except DomainError as exc:
                _form_error(form, exc)
            else:
                # The form comes back without the texts: the page never repeats a secret in clear.
                keep = {name: data[name] for name in ("profile", "kind", "app")}
                context["form"] = PlaygroundForm(initial=keep, profiles=selectors.profile_list(org=request.org))
                context["scan"] = scan
                context["contents"] = [
                    {
                        "kind": ContentKind(content.kind).label,
                        "segments": _highlight(content.text, [f for f in scan.findings if f["content"] == index]),
                    }
                    for index, content in enumerate(contents)
                ]
                response = render(request, self.template_name, context)
                response["Cache-Control"] = "no-store"
                return response
        return render(request, self.template_name, context, status=400)


# --- Policy ----------------------------------------------------------------------------------
def _category_choices():
    return list(Category.choices)


class PolicyView(OrgView):
    required_action = Action.SECURITY_VIEW
    template_name = "security/policy.html"

    def _context(self, request, form=None):
        policy = selectors.policy_for(org=request.org)
        if form is None:
            form = PolicyForm(
                initial={
                    "allowed_zones": ", ".join(policy.allowed_zones),
                    "blocked_categories": policy.blocked_categories,
                    "approval_bandwidth_mbps": policy.approval_bandwidth_mbps,
                },
                categories=_category_choices(),
            )
        return {
            "policy": policy,
            "form": form,
            "zones": services.known_zones(),
            "blocked_providers": list(policy.blocked_providers.all()) if policy.pk else [],
            "can_manage": _can_manage(request),
        }

    def get(self, request):
        return render(request, self.template_name, self._context(request))

    def post(self, request):
        if not _can_manage(request):
            raise PermissionDenied("Your role in this organization does not allow this.")
        form = PolicyForm(request.POST, categories=_category_choices())
        if form.is_valid():
            try:
                services.policy_update(membership=request.membership, **form.cleaned_data)
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Policy saved. New connections are checked against it.")
                return redirect("security:policy")
        return render(request, self.template_name, self._context(request, form), status=400)


# --- Scan profiles ---------------------------------------------------------------------------
class ProfileListView(OrgView):
    required_action = Action.SECURITY_VIEW
    template_name = "security/profile_list.html"

    def _context(self, request, form=None):
        services.profile_default(org=request.org)
        return {
            "profiles": selectors.profile_list(org=request.org),
            "form": form
            or ProfileForm(initial=ProfileForm.initial_for(ScanProfile(name="", detectors=list(DETECTORS)))),
            "can_manage": _can_manage(request),
        }

    def get(self, request):
        return render(request, self.template_name, self._context(request))

    def post(self, request):
        """Create a profile."""
        if not _can_manage(request):
            raise PermissionDenied("Your role in this organization does not allow this.")
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                profile = services.profile_create(
                    membership=request.membership, name=form.cleaned_data["name"], **form.changes()
                )
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Profile {profile.name} created.")
                return redirect("security:profile-detail", profile_id=profile.public_id)
        return render(request, self.template_name, self._context(request, form), status=400)


class ProfileDetailView(OrgView):
    required_action = Action.SECURITY_VIEW
    template_name = "security/profile_detail.html"

    def get(self, request, profile_id, form=None, status=200):
        profile = self.get_org_object(ScanProfile.objects, public_id=profile_id)
        context = {
            "profile": profile,
            "form": form or ProfileForm(initial=ProfileForm.initial_for(profile)),
            "can_manage": _can_manage(request),
        }
        return render(request, self.template_name, context, status=status)

    def post(self, request, profile_id):
        """Save the profile, or delete it."""
        if not _can_manage(request):
            raise PermissionDenied("Your role in this organization does not allow this.")
        profile = self.get_org_object(ScanProfile.objects, public_id=profile_id)
        if request.POST.get("delete"):
            try:
                services.profile_delete(membership=request.membership, profile=profile)
            except DomainError as exc:
                messages.error(request, exc.message)
                return redirect("security:profile-detail", profile_id=profile.public_id)
            messages.success(request, f"Profile {profile.name} deleted.")
            return redirect("security:profile-list")
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                services.profile_update(
                    membership=request.membership, profile=profile, name=form.cleaned_data["name"], **form.changes()
                )
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Profile saved.")
                return redirect("security:profile-detail", profile_id=profile.public_id)
        return self.get(request, profile_id, form=form, status=400)
