"""The provider console: portal pages for members of a provider organization.

Listings (create, edit, preview, publish, retire), their access points, incoming connection
requests (approve with a VLAN, reject with a reason) and customers. Every write calls
``marketplace.services`` or ``fabric.services``; pages only offer what the state and the member's
role allow. Members of a non-provider organization are sent back to the dashboard with the reason.
"""

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View

from fabric import services as fabric_services
from fabric.choices import PortState
from fabric.models import Port
from fabric.selectors import connection_list
from hub.errors import DomainError
from hub.roles import Action, role_allows
from hub.views import OrgView, safe_next
from marketplace import selectors, services
from marketplace.attributes import SCHEMAS
from marketplace.choices import OFFERING_TRANSITIONS, Category, OfferingStatus
from marketplace.console_forms import (
    AccessPointForm,
    ApproveForm,
    OfferingForm,
    ProviderProfileForm,
    RejectForm,
    attribute_label,
)
from marketplace.models import AccessPoint, Offering, ProviderProfile


class _ProviderGate(View):
    """Runs after ``OrgView``'s login, organization and role checks (it follows it in the MRO).

    The objects a URL names are looked up first, in the member's own organization, so another
    organization's object is a 404 whatever its kind; then a non-provider organization is turned away.
    """

    def dispatch(self, request, *args, **kwargs):
        self.load(**kwargs)
        if not request.org.is_provider:
            messages.warning(
                request,
                f"The provider console is for members of provider organizations; {request.org.name} is not one. "
                "Switch to your provider organization from the menu.",
            )
            return redirect("home")
        return super().dispatch(request, *args, **kwargs)

    def load(self, **kwargs) -> None:
        """Fetch the objects named in the URL (views with such objects override this)."""


class ConsoleView(OrgView, _ProviderGate):
    required_action = Action.MARKETPLACE_VIEW

    @property
    def can_manage(self) -> bool:
        return role_allows(self.request.membership.role, Action.PROVIDER_MANAGE)

    def profile(self) -> ProviderProfile | None:
        return ProviderProfile.objects.filter(organization=self.request.org).first()


class _OfferingView(ConsoleView):
    def load(self, offering_id=None, **kwargs) -> None:
        self.offering = self.get_org_object(Offering.objects.select_related("provider"), public_id=offering_id)


def _error(request, exc: DomainError) -> None:
    messages.error(request, exc.message)


# --- Dashboard and profile -------------------------------------------------------------------
class DashboardView(ConsoleView):
    def get(self, request):
        return render(
            request,
            "marketplace/console/dashboard.html",
            {
                "profile": self.profile(),
                "stats": selectors.console_dashboard(org=request.org),
                "waiting": selectors.console_incoming_requests(org=request.org)[:5],
                "can_manage": self.can_manage,
            },
        )


class ProfileView(ConsoleView):
    template_name = "marketplace/console/profile.html"

    @property
    def required_action(self) -> Action:
        return Action.PROVIDER_MANAGE if self.request.method == "POST" else Action.MARKETPLACE_VIEW

    def get(self, request):
        profile = self.profile()
        initial = {}
        if profile:
            initial = {
                "name": profile.name,
                "slug": profile.slug,
                "description": profile.description,
                "website": profile.website,
                "certifications": ", ".join(profile.certifications),
                "hq_country": profile.hq_country,
            }
        else:
            initial = {"name": request.org.name}
        form = ProviderProfileForm(initial=initial)
        return render(request, self.template_name, {"form": form, "profile": profile, "can_manage": self.can_manage})

    def post(self, request):
        form = ProviderProfileForm(request.POST)
        if form.is_valid():
            try:
                services.provider_profile_upsert(membership=request.membership, **form.service_kwargs())
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "Your provider profile is saved.")
                return redirect("console:dashboard")
        context = {"form": form, "profile": self.profile(), "can_manage": True}
        return render(request, self.template_name, context, status=400)


# --- Offerings -------------------------------------------------------------------------------
class OfferingListView(ConsoleView):
    def get(self, request):
        status = request.GET.get("status", "")
        if status not in OfferingStatus.values:
            status = ""
        return render(
            request,
            "marketplace/console/offering_list.html",
            {
                "offerings": selectors.console_offerings(org=request.org, status=status),
                "stats": selectors.console_dashboard(org=request.org)["listings"],
                "status": status,
                "profile": self.profile(),
                "can_manage": self.can_manage,
            },
        )


class OfferingCreateView(ConsoleView):
    """Step 1 picks the category (``?category=``); step 2 is the form with that category's attributes."""

    required_action = Action.PROVIDER_MANAGE
    template_name = "marketplace/console/offering_form.html"

    def _category(self, request) -> str | None:
        category = request.GET.get("category") or request.POST.get("category")
        return category if category in Category.values else None

    def get(self, request):
        if self.profile() is None:
            messages.info(request, "Create your provider profile first: customers see it next to every listing.")
            return redirect("console:profile")
        category = self._category(request)
        form = OfferingForm(category=category) if category else None
        return render(request, self.template_name, self._context(category, form))

    def post(self, request):
        category = self._category(request)
        if category is None:
            messages.error(request, "Choose a category for the new offering.")
            return redirect("console:offering-create")
        form = OfferingForm(request.POST, category=category)
        if form.is_valid():
            try:
                offering = services.offering_create(
                    membership=request.membership, category=category, **form.service_kwargs()
                )
            except DomainError as exc:
                form.add_service_error(exc)
            else:
                messages.success(request, f"Created {offering.name} as a draft. Add an access point, then publish it.")
                return redirect("console:offering-detail", offering_id=offering.public_id)
        return render(request, self.template_name, self._context(category, form), status=400)

    def _context(self, category, form) -> dict:
        return {
            "categories": Category.choices,
            "category": category,
            "category_label": Category(category).label if category else "",
            "form": form,
            "offering": None,
        }


class OfferingEditView(_OfferingView):
    required_action = Action.PROVIDER_MANAGE
    template_name = "marketplace/console/offering_form.html"

    def get(self, request, offering_id):
        form = OfferingForm(category=self.offering.category, initial=OfferingForm.initial_from(self.offering))
        return render(request, self.template_name, self._context(form))

    def post(self, request, offering_id):
        form = OfferingForm(request.POST, category=self.offering.category)
        if form.is_valid():
            try:
                services.offering_update(membership=request.membership, offering=self.offering, **form.service_kwargs())
            except DomainError as exc:
                form.add_service_error(exc)
            else:
                messages.success(request, "Saved.")
                return redirect("console:offering-detail", offering_id=self.offering.public_id)
        return render(request, self.template_name, self._context(form), status=400)

    def _context(self, form) -> dict:
        return {
            "category": self.offering.category,
            "category_label": self.offering.get_category_display(),
            "form": form,
            "offering": self.offering,
        }


class OfferingDetailView(_OfferingView):
    """The listing as the provider manages it, with a preview of what customers see."""

    def get(self, request, offering_id, access_point_form=None):
        offering = self.offering
        access_points = list(offering.access_points.select_related("port__metro").annotate(order_count=Count("orders")))
        last_published = offering.status == OfferingStatus.PUBLISHED and len(access_points) <= 1
        for access_point in access_points:
            access_point.removable = not access_point.order_count and not last_published
        free_ports = self._free_ports()
        transitions = OFFERING_TRANSITIONS[offering.status]
        schema = SCHEMAS[offering.category]
        context = {
            "offering": offering,
            "access_points": access_points,
            "can_manage": self.can_manage,
            "can_publish": OfferingStatus.PUBLISHED in transitions,
            "can_retire": OfferingStatus.RETIRED in transitions,
            "specifications": [
                (attribute_label(name), offering.attributes[name]) for name in schema if name in offering.attributes
            ],
            "access_point_form": access_point_form or AccessPointForm(ports=free_ports),
            "has_free_ports": free_ports.exists(),
            "order_count": offering.orders.count(),
        }
        return render(
            request,
            "marketplace/console/offering_detail.html",
            context,
            status=400 if access_point_form is not None else 200,
        )

    def _free_ports(self):
        return (
            Port.objects.for_org(self.request.org)
            .filter(state=PortState.ACTIVE)
            .exclude(access_points__offering=self.offering)
            .select_related("metro")
        )


class OfferingStatusView(_OfferingView):
    """POST .../publish/ or .../retire/."""

    required_action = Action.PROVIDER_MANAGE

    def post(self, request, offering_id, verb):
        service = {"publish": services.offering_publish, "retire": services.offering_retire}[verb]
        try:
            offering = service(membership=request.membership, offering=self.offering)
        except DomainError as exc:
            messages.error(request, f"Not {'published' if verb == 'publish' else 'retired'}: {exc.message}")
        else:
            if verb == "publish":
                messages.success(request, f"{offering.name} is published: customers find it in the catalog now.")
            else:
                messages.success(
                    request, f"{offering.name} is retired: it left the catalog; existing orders keep running."
                )
        return redirect("console:offering-detail", offering_id=self.offering.public_id)


# --- Access points ---------------------------------------------------------------------------
class AccessPointAddView(OfferingDetailView):
    """POST only; a form with errors is shown on the offering's page."""

    required_action = Action.PROVIDER_MANAGE
    http_method_names = ["post"]

    def post(self, request, offering_id):
        form = AccessPointForm(request.POST, ports=self._free_ports())
        if form.is_valid():
            try:
                access_point = services.access_point_create(
                    membership=request.membership, offering=self.offering, **form.cleaned_data
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"{self.offering.name} is now reachable in {access_point.port.metro.name}.")
                return redirect("console:offering-detail", offering_id=self.offering.public_id)
        return self.get(request, offering_id, access_point_form=form)


class AccessPointRemoveView(ConsoleView):
    required_action = Action.PROVIDER_MANAGE

    def load(self, access_point_id=None, **kwargs) -> None:
        self.access_point = get_object_or_404(
            AccessPoint.objects.select_related("offering", "port__metro").filter(
                offering__in=Offering.objects.for_org(self.request.org)
            ),
            public_id=access_point_id,
        )

    def post(self, request, access_point_id):
        offering = self.access_point.offering
        try:
            services.access_point_delete(membership=request.membership, access_point=self.access_point)
        except DomainError as exc:
            _error(request, exc)
        else:
            messages.success(request, f"Removed the access point in {self.access_point.port.metro.name}.")
        return redirect("console:offering-detail", offering_id=offering.public_id)


# --- Incoming connection requests ------------------------------------------------------------
class RequestListView(ConsoleView):
    def get(self, request):
        waiting = list(selectors.console_incoming_requests(org=request.org))
        suggested = selectors.suggested_vlans(ports={connection.z_port for connection in waiting})
        for connection in waiting:
            connection.suggested_vlan = suggested.get(connection.z_port_id)
        return render(
            request,
            "marketplace/console/requests.html",
            {"requests": waiting, "can_manage": role_allows(request.membership.role, Action.FABRIC_MANAGE)},
        )


class _RequestActionView(ConsoleView):
    required_action = Action.PROVIDER_MANAGE

    def load(self, connection_id=None, **kwargs) -> None:
        # Requests that land on this organization's ports; its own outgoing ones are not for it to judge.
        incoming = connection_list(org=self.request.org).filter(z_port__organization=self.request.org)
        self.connection = get_object_or_404(incoming.exclude(organization=self.request.org), public_id=connection_id)

    def done(self, request):
        return redirect(safe_next(request, reverse("console:requests")))


class RequestApproveView(_RequestActionView):
    def post(self, request, connection_id):
        form = ApproveForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"Not approved: {form.errors['z_vlan'][0]} (your VLAN, 2 to 4094).")
            return self.done(request)
        try:
            connection = fabric_services.connection_approve(
                membership=request.membership, connection=self.connection, z_vlan=form.cleaned_data["z_vlan"]
            )
        except DomainError as exc:
            messages.error(request, f"Not approved: {exc.message}")
        else:
            messages.success(
                request,
                f"Approved {connection.name} for {connection.organization.name} on VLAN {connection.z_vlan}; "
                "provisioning has started.",
            )
        return self.done(request)


class RequestRejectView(_RequestActionView):
    def post(self, request, connection_id):
        form = RejectForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        try:
            connection = fabric_services.connection_reject(
                membership=request.membership, connection=self.connection, reason=reason
            )
        except DomainError as exc:
            messages.error(request, f"Not rejected: {exc.message}")
        else:
            messages.success(request, f"Rejected {connection.name}; {connection.organization.name} sees your reason.")
        return self.done(request)


# --- Customers -------------------------------------------------------------------------------
class CustomerListView(ConsoleView):
    def get(self, request):
        return render(
            request,
            "marketplace/console/customers.html",
            {
                "customers": selectors.console_customers(org=request.org),
                "hours_per_month": selectors.HOURS_PER_MONTH,
            },
        )
