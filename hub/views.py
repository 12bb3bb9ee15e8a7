"""Portal pages of the hub: account, organizations, members, API tokens, webhooks, notifications,
audit log, health."""

import csv
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.http import require_GET

from hub import selectors, services
from hub.api.errors import json_error_response
from hub.choices import DeliveryStatus
from hub.dashboard import dashboard_tiles
from hub.errors import DomainError
from hub.events import subscribable_event_types
from hub.filters import AuditEventPortalFilter
from hub.forms import APITokenForm, InvitationForm, OrganizationForm, RoleForm, SignupForm, WebhookForm
from hub.middleware import SESSION_ORG_KEY
from hub.models import Invitation, Membership, Webhook, WebhookDelivery
from hub.roles import Action, role_allows


class OrgView(LoginRequiredMixin, View):
    """Base for portal pages that act in the active organization.

    ``required_action`` is checked against the member's role (403 page when too small); objects
    are fetched through ``get_org_object`` so another organization's object is a 404.
    """

    required_action: Action = Action.ORG_VIEW

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if request.org is None:
            messages.info(request, "Create an organization to get started.")
            return redirect("org-create")
        if not role_allows(request.membership.role, self.required_action):
            raise PermissionDenied("Your role in this organization does not allow this.")
        return super().dispatch(request, *args, **kwargs)

    def get_org_object(self, queryset, **lookup):
        return get_object_or_404(queryset.for_org(self.request.org), **lookup)


def safe_next(request, default: str) -> str:
    """The ``next`` parameter when it points at this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


# --- Home ------------------------------------------------------------------------------------
class HomeView(OrgView):
    def get(self, request):
        context = {
            "overview": selectors.organization_overview(org=request.org),
            "tiles": dashboard_tiles(request),
            "can_audit": role_allows(request.membership.role, Action.AUDIT_VIEW),
        }
        return render(request, "hub/home.html", context)


# --- Account ---------------------------------------------------------------------------------
class SignupView(View):
    template_name = "registration/signup.html"

    def get(self, request):
        if request.user.is_authenticated:
            return redirect("home")
        return render(
            request, self.template_name, {"form": SignupForm(initial={"email": request.GET.get("email", "")})}
        )

    def post(self, request):
        form = SignupForm(request.POST)
        if form.is_valid():
            try:
                user, org = services.user_signup(**form.cleaned_data)
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                request.session[SESSION_ORG_KEY] = org.pk
                messages.success(request, f"Welcome! {org.name} is ready and you are its owner.")
                return redirect(safe_next(request, reverse("home")))
        return render(request, self.template_name, {"form": form}, status=400)


# --- Organizations ---------------------------------------------------------------------------
class OrganizationCreateView(LoginRequiredMixin, View):
    template_name = "hub/org_create.html"

    def get(self, request):
        return render(request, self.template_name, {"form": OrganizationForm()})

    def post(self, request):
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                org = services.organization_create(actor=request.user, name=form.cleaned_data["name"])
            except DomainError as exc:
                form.add_error("name", exc.message)
            else:
                request.session[SESSION_ORG_KEY] = org.pk
                messages.success(
                    request, f"Created {org.name}. You are its owner and it is now your active organization."
                )
                return redirect("home")
        return render(request, self.template_name, {"form": form}, status=400)


class OrganizationSwitchView(LoginRequiredMixin, View):
    def post(self, request):
        membership = get_object_or_404(
            selectors.user_memberships(user=request.user), organization__public_id=request.POST.get("org")
        )
        request.session[SESSION_ORG_KEY] = membership.organization_id
        messages.info(request, f"You are now working in {membership.organization.name}.")
        return redirect(safe_next(request, reverse("home")))


class SettingsView(OrgView):
    def get(self, request):
        return render(
            request,
            "hub/settings.html",
            {
                "memberships": selectors.user_memberships(user=request.user),
                "overview": selectors.organization_overview(org=request.org),
            },
        )


# --- Members and invitations -----------------------------------------------------------------
class MembersView(OrgView):
    required_action = Action.MEMBERS_VIEW
    template_name = "hub/members.html"

    def context(self, request, form=None):
        can_manage = role_allows(request.membership.role, Action.MEMBERS_MANAGE)
        return {
            "members": selectors.organization_members(org=request.org),
            "invitations": Invitation.objects.for_org(request.org).filter(
                accepted_at__isnull=True, revoked_at__isnull=True
            ),
            "form": form or InvitationForm(membership=request.membership),
            "can_manage": can_manage,
            "can_manage_owners": role_allows(request.membership.role, Action.OWNERS_MANAGE),
            "owner_count": selectors.owner_count(org=request.org),
            "roles": RoleForm.base_fields["role"].choices,
        }

    def get(self, request):
        return render(request, self.template_name, self.context(request))

    def post(self, request):
        """Invite a member."""
        if not role_allows(request.membership.role, Action.MEMBERS_MANAGE):
            raise PermissionDenied
        form = InvitationForm(request.POST, membership=request.membership)
        if form.is_valid():
            try:
                invitation = services.invitation_create(actor_membership=request.membership, **form.cleaned_data)
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("members")
        return render(request, self.template_name, self.context(request, form), status=400)


class MemberRoleView(OrgView):
    required_action = Action.MEMBERS_MANAGE

    def post(self, request, user_id):
        membership = self.get_org_object(
            Membership.objects.select_related("user", "organization"), user__public_id=user_id
        )
        form = RoleForm(request.POST)
        try:
            if not form.is_valid():
                raise DomainError("Choose a valid role.")
            membership = services.membership_change_role(
                membership=membership, actor_membership=request.membership, role=form.cleaned_data["role"]
            )
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display()}.")
        except DomainError as exc:
            messages.error(request, exc.message)
        if request.htmx:
            membership.refresh_from_db()
            context = MembersView().context(request) | {"member": membership}
            return render(request, "hub/members.html#member-row", context)
        return redirect("members")


class MemberRemoveView(OrgView):
    required_action = Action.MEMBERS_VIEW  # members may leave; removing others is checked by the service

    def post(self, request, user_id):
        membership = self.get_org_object(
            Membership.objects.select_related("user", "organization"), user__public_id=user_id
        )
        leaving = membership.user_id == request.user.pk
        try:
            services.membership_remove(membership=membership, actor_membership=request.membership)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("members")
        if leaving:
            request.session.pop(SESSION_ORG_KEY, None)
            messages.success(request, f"You left {membership.organization.name}.")
            return redirect("home")
        messages.success(request, f"Removed {membership.user.email} from {membership.organization.name}.")
        return redirect("members")


class InvitationRevokeView(OrgView):
    required_action = Action.MEMBERS_MANAGE

    def post(self, request, invitation_id):
        invitation = self.get_org_object(Invitation.objects.select_related("organization"), public_id=invitation_id)
        try:
            services.invitation_revoke(invitation=invitation, actor_membership=request.membership)
            messages.success(request, f"Withdrew the invitation to {invitation.email}.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("members")


class InvitationAcceptView(View):
    """The link from the invitation e-mail. Anyone may open it; joining needs the invited account."""

    template_name = "hub/invitation_accept.html"

    def get(self, request, token):
        try:
            invitation = services.invitation_lookup(raw_token=token)
        except DomainError as exc:
            return render(request, self.template_name, {"error": exc.message}, status=exc.status_code)
        return render(request, self.template_name, {"invitation": invitation, "token": token})

    def post(self, request, token):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        try:
            membership = services.invitation_accept(raw_token=token, user=request.user)
        except DomainError as exc:
            return render(request, self.template_name, {"error": exc.message}, status=exc.status_code)
        request.session[SESSION_ORG_KEY] = membership.organization_id
        messages.success(request, f"You joined {membership.organization.name} as {membership.get_role_display()}.")
        return redirect("home")


# --- API tokens ------------------------------------------------------------------------------
class TokensView(OrgView):
    required_action = Action.TOKENS_USE
    template_name = "hub/tokens.html"

    def context(self, request, form=None, created=None, secret=None):
        see_all = role_allows(request.membership.role, Action.TOKENS_MANAGE)
        return {
            "tokens": selectors.token_list(org=request.org, user=request.user, see_all=see_all),
            "see_all": see_all,
            "form": form or APITokenForm(),
            "created": created,
            "secret": secret,
        }

    def get(self, request):
        return render(request, self.template_name, self.context(request))

    def post(self, request):
        form = APITokenForm(request.POST)
        if form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                token, secret = services.api_token_create(
                    membership=request.membership,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                # Rendered, not redirected: the secret exists only in this response.
                response = render(request, self.template_name, self.context(request, created=token, secret=secret))
                response["Cache-Control"] = "no-store"
                return response
        return render(request, self.template_name, self.context(request, form=form), status=400)


class TokenRevokeView(OrgView):
    required_action = Action.TOKENS_USE

    def post(self, request, token_id):
        see_all = role_allows(request.membership.role, Action.TOKENS_MANAGE)
        token = get_object_or_404(
            selectors.token_list(org=request.org, user=request.user, see_all=see_all), public_id=token_id
        )
        try:
            services.api_token_revoke(token=token, actor_membership=request.membership)
            messages.success(request, f"Revoked the token {token.name}.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("tokens")


# --- Webhooks --------------------------------------------------------------------------------
def _form_error(form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _no_store(response):
    response["Cache-Control"] = "no-store"  # the page carries a secret shown once
    return response


class WebhookListView(OrgView):
    required_action = Action.WEBHOOKS_MANAGE
    template_name = "hub/webhooks.html"

    def context(self, request, form=None, created=None, secret=None):
        return {
            "webhooks": selectors.webhook_list(org=request.org),
            "form": form or WebhookForm(),
            "created": created,
            "secret": secret,
            "timeout": settings.WEBHOOK_TIMEOUT_SECONDS,
        }

    def get(self, request):
        return render(request, self.template_name, self.context(request))

    def post(self, request):
        form = WebhookForm(request.POST)
        if form.is_valid():
            try:
                webhook, secret = services.webhook_create(membership=request.membership, **form.cleaned_data)
            except DomainError as exc:
                _form_error(form, exc)
            else:
                # Rendered, not redirected: the secret exists only in this response.
                return _no_store(
                    render(request, self.template_name, self.context(request, created=webhook, secret=secret))
                )
        return render(request, self.template_name, self.context(request, form=form), status=400)


WEBHOOK_LOG_SIZE = 50


def _webhook_page(request, webhook: Webhook, *, form=None, secret=None, status=200):
    """The webhook's page: settings form, actions and the last deliveries. For htmx, the log only."""
    deliveries = list(selectors.webhook_deliveries(webhook=webhook)[:WEBHOOK_LOG_SIZE])
    events = subscribable_event_types()
    initial = {
        "url": webhook.url,
        "description": webhook.description,
        "event_types": webhook.event_types,
        "is_active": webhook.is_active,
    }
    context = {
        "webhook": webhook,
        "deliveries": deliveries,
        "any_pending": any(d.status == DeliveryStatus.PENDING for d in deliveries),
        "subscribed": [(name, events.get(name, "")) for name in webhook.event_types],
        "form": form or WebhookForm(initial=initial),
        "secret": secret,
        "timeout": settings.WEBHOOK_TIMEOUT_SECONDS,
    }
    template = "hub/webhook_detail.html#delivery-log" if request.htmx else "hub/webhook_detail.html"
    response = render(request, template, context, status=status)
    return _no_store(response) if secret else response


class WebhookDetailView(OrgView):
    required_action = Action.WEBHOOKS_MANAGE

    def get(self, request, webhook_id):
        return _webhook_page(request, self.get_org_object(Webhook.objects, public_id=webhook_id))

    def post(self, request, webhook_id):
        """Save the webhook's settings."""
        webhook = self.get_org_object(Webhook.objects, public_id=webhook_id)
        form = WebhookForm(request.POST)
        if form.is_valid():
            try:
                services.webhook_update(membership=request.membership, webhook=webhook, **form.cleaned_data)
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Webhook saved.")
                return redirect("webhooks:detail", webhook_id=webhook.public_id)
        return _webhook_page(request, webhook, form=form, status=400)


class WebhookRotateSecretView(OrgView):
    required_action = Action.WEBHOOKS_MANAGE

    def post(self, request, webhook_id):
        webhook = self.get_org_object(Webhook.objects, public_id=webhook_id)
        webhook, secret = services.webhook_rotate_secret(membership=request.membership, webhook=webhook)
        # Rendered, not redirected: the new secret exists only in this response.
        return _webhook_page(request, webhook, secret=secret)


class WebhookDeleteView(OrgView):
    required_action = Action.WEBHOOKS_MANAGE

    def post(self, request, webhook_id):
        webhook = self.get_org_object(Webhook.objects, public_id=webhook_id)
        services.webhook_delete(membership=request.membership, webhook=webhook)
        messages.success(request, f"Deleted the webhook to {webhook.url}.")
        return redirect("webhooks:list")


class WebhookTestView(OrgView):
    required_action = Action.WEBHOOKS_MANAGE

    def post(self, request, webhook_id):
        webhook = self.get_org_object(Webhook.objects, public_id=webhook_id)
        try:
            services.webhook_send_test(membership=request.membership, webhook=webhook)
            messages.success(request, "Test event queued; its delivery appears in the log below.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("webhooks:detail", webhook_id=webhook.public_id)


class WebhookRedeliverView(OrgView):
    required_action = Action.WEBHOOKS_MANAGE

    def post(self, request, webhook_id, delivery_id):
        delivery = self.get_org_object(
            WebhookDelivery.objects.select_related("webhook"), webhook__public_id=webhook_id, public_id=delivery_id
        )
        try:
            services.webhook_redeliver(membership=request.membership, delivery=delivery)
            messages.success(request, f"Redelivering the {delivery.event_type} event.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("webhooks:detail", webhook_id=webhook_id)


# --- Notifications ---------------------------------------------------------------------------
class NotificationListView(OrgView):
    page_size = 50

    def get(self, request):
        notifications = selectors.notification_list(org=request.org, user=request.user)
        raw_page = request.GET.get("page", "1")
        page = max(int(raw_page), 1) if raw_page.isdigit() else 1
        start = (page - 1) * self.page_size
        rows = list(notifications[start : start + self.page_size + 1])
        context = {"notifications": rows[: self.page_size], "page": page, "has_next": len(rows) > self.page_size}
        return render(request, "hub/notifications.html", context)


class NotificationReadView(OrgView):
    def post(self, request, notification_id):
        notification = get_object_or_404(
            selectors.notification_list(org=request.org, user=request.user), public_id=notification_id
        )
        services.notification_mark_read(membership=request.membership, notification=notification)
        if request.htmx:
            # The row, plus the header's unread count swapped out of band.
            row = render_to_string("hub/notifications.html#notification-row", {"n": notification}, request=request)
            count = render_to_string("hub/partials/unread_count.html", {"oob": True}, request=request)
            return HttpResponse(row + count)
        return redirect(safe_next(request, reverse("notifications:list")))


class NotificationReadAllView(OrgView):
    def post(self, request):
        count = services.notification_mark_all_read(membership=request.membership)
        messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
        return redirect("notifications:list")


# --- Audit log -------------------------------------------------------------------------------
class AuditLogView(OrgView):
    required_action = Action.AUDIT_VIEW
    page_size = 50

    def get(self, request):
        filterset = AuditEventPortalFilter(request.GET, queryset=selectors.audit_events(org=request.org))
        events = filterset.qs if filterset.is_valid() else selectors.audit_events(org=request.org).none()
        page = max(int(request.GET.get("page", "1")) if request.GET.get("page", "1").isdigit() else 1, 1)
        start = (page - 1) * self.page_size
        rows = list(events[start : start + self.page_size + 1])
        params = request.GET.copy()
        params.pop("page", None)
        context = {
            "filter": filterset,
            "events": rows[: self.page_size],
            "page": page,
            "has_next": len(rows) > self.page_size,
            "query": params.urlencode(),
        }
        template = "hub/audit.html#audit-table" if request.htmx else "hub/audit.html"
        return render(request, template, context)


class _Echo:
    def write(self, value):
        return value


def csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    """Stream ``rows`` as a CSV download named ``<filename>-<time>.csv``."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{timezone.now():%Y%m%d-%H%M}.csv"'
    return response


class AuditExportView(OrgView):
    required_action = Action.AUDIT_VIEW
    columns = [
        "time",
        "action",
        "actor",
        "token",
        "object_type",
        "object_id",
        "object",
        "before",
        "after",
        "request_id",
        "ip",
    ]

    def get(self, request):
        filterset = AuditEventPortalFilter(request.GET, queryset=selectors.audit_events(org=request.org))
        if not filterset.is_valid():
            return HttpResponse("Invalid filter: " + filterset.errors.as_text(), status=400, content_type="text/plain")
        return csv_response(
            f"audit-{request.org.slug}",
            self.columns,
            (
                [
                    event.created_at.isoformat(),
                    event.action,
                    event.actor_email,
                    event.token.prefix if event.token else "",
                    event.object_type,
                    event.object_id,
                    event.object_repr,
                    "" if event.before is None else event.before,
                    "" if event.after is None else event.after,
                    event.request_id,
                    event.ip_address or "",
                ]
                for event in filterset.qs.iterator(chunk_size=2000)
            ),
        )


# --- Health ----------------------------------------------------------------------------------
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """Ready when the database answers and the Celery broker accepts a connection."""
    from hub.celery import app

    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        with app.connection_for_write(url=app.conf.broker_url) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


# --- Error pages -----------------------------------------------------------------------------
def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception=None):
    if _is_api(request):
        return json_error_response(request, status_code=404, code="not_found", message="No such API endpoint.")
    return render(request, "404.html", status=404)


def api_not_found(request, unmatched=""):
    """Catch-all under /api/ so an unknown endpoint answers in the error envelope, even with DEBUG."""
    message = "No such API endpoint."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            message = f"No such API endpoint. Did you mean {request.path}/ (with a trailing slash)?"
    return json_error_response(request, status_code=404, code="not_found", message=message)


def permission_denied(request, exception=None):
    if _is_api(request):
        return json_error_response(request, status_code=403, code="permission_denied", message="Not allowed.")
    return render(request, "403.html", {"reason": str(exception) if exception else ""}, status=403)


def server_error(request):
    if _is_api(request):
        return json_error_response(
            request, status_code=500, code="server_error", message="Something went wrong on our side."
        )
    return HttpResponse(render_to_string("500.html", {"request_id": getattr(request, "request_id", "")}), status=500)
