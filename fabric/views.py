"""Fabric pages: metros, ports, connections and incoming requests. Every write calls a service."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from fabric import pricing, selectors, services, telemetry
from fabric.choices import CONNECTION_TRANSITIONS, ConnectionState, PendingOn, PortState
from fabric.filters import ConnectionFilter, MetroFilter
from fabric.forms import ApproveForm, BandwidthForm, ConnectionRequestForm, PortOrderForm, PortSettingsForm, RejectForm
from fabric.models import Connection, Metro, Port
from hub.choices import Role
from hub.errors import DomainError
from hub.roles import Action, role_allows
from hub.views import OrgView, csv_response, safe_next


def _form_error(form, exc: DomainError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


class MetroListView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request):
        filterset = MetroFilter(request.GET, queryset=Metro.objects.all())
        metros = filterset.qs if filterset.is_valid() else Metro.objects.none()
        template = "fabric/metro_list.html#metro-table" if request.htmx else "fabric/metro_list.html"
        return render(request, template, {"filter": filterset, "metros": metros})


class MetroDetailView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request, code):
        metro = get_object_or_404(Metro, code=code.upper())
        legs = sorted(
            (services.latency_leg(metro, other) | {"metro": other} for other in Metro.objects.exclude(pk=metro.pk)),
            key=lambda leg: leg["estimated_rtt_ms"],
        )
        my_ports = selectors.port_list(org=request.org).filter(metro=metro).exclude(state=PortState.DECOMMISSIONED)
        my_metros = {
            port.metro for port in selectors.port_list(org=request.org).exclude(state=PortState.DECOMMISSIONED)
        }
        from_mine = [
            services.latency_leg(mine, metro) | {"metro": mine}
            for mine in sorted(my_metros, key=lambda m: m.code)
            if mine != metro
        ]
        return render(
            request,
            "fabric/metro_detail.html",
            {"metro": metro, "legs": legs, "my_ports": my_ports, "from_mine": from_mine},
        )


# --- Ports -----------------------------------------------------------------------------------
class PortListView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request):
        ports = selectors.port_list(org=request.org)
        if not request.GET.get("all"):
            ports = ports.exclude(state=PortState.DECOMMISSIONED)
        if request.GET.get("export") == "csv":
            return csv_response(
                f"ports-{request.org.slug}",
                [
                    "id",
                    "name",
                    "metro",
                    "speed_mbps",
                    "capacity_mbps",
                    "committed_mbps",
                    "state",
                    "auto_approve",
                    "created_at",
                ],
                (
                    [
                        p.public_id,
                        p.name,
                        p.metro.code,
                        p.speed_mbps,
                        p.capacity_mbps,
                        p.committed_mbps,
                        p.state,
                        p.auto_approve,
                        p.created_at.isoformat(),
                    ]
                    for p in ports.iterator(chunk_size=1000)
                ),
            )
        return render(
            request,
            "fabric/port_list.html",
            {"ports": ports, "can_manage": role_allows(request.membership.role, Action.FABRIC_MANAGE)},
        )


class PortOrderView(OrgView):
    required_action = Action.FABRIC_MANAGE
    template_name = "fabric/port_order.html"

    def get(self, request):
        initial = {"metro": request.GET.get("metro")} if request.GET.get("metro") else {}
        return render(
            request, self.template_name, {"form": PortOrderForm(initial=initial), "fees": pricing.PORT_MONTHLY_FEE}
        )

    def post(self, request):
        form = PortOrderForm(request.POST)
        if form.is_valid():
            try:
                port = services.port_order(membership=request.membership, **form.cleaned_data)
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Port {port.name} ordered in {port.metro.name}; it is being provisioned.")
                return redirect("fabric:port-detail", port_id=port.public_id)
        return render(request, self.template_name, {"form": form, "fees": pricing.PORT_MONTHLY_FEE}, status=400)


class PortDetailView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request, port_id, form=None, status=200):
        port = self.get_org_object(Port.objects.select_related("metro"), public_id=port_id)
        connections = selectors.connection_list(org=request.org).filter(Q(a_port=port) | Q(z_port=port))
        context = {
            "port": port,
            "vlans": sorted(selectors.port_vlans(port=port)),
            "connections": connections,
            "workflow": port.workflows.prefetch_related("steps").first(),
            "form": form or PortSettingsForm(initial={"name": port.name, "auto_approve": port.auto_approve}),
            "can_manage": role_allows(request.membership.role, Action.FABRIC_MANAGE),
            "utilisation": round(100 * port.committed_mbps / port.capacity_mbps) if port.capacity_mbps else 0,
        }
        if not request.htmx:
            context.update(utilisation_context(request, subject=port, window=chosen_window(request)))
        template = "fabric/port_detail.html#port-status" if request.htmx else "fabric/port_detail.html"
        return render(request, template, context, status=status)

    def post(self, request, port_id):
        """Save the port's settings, or decommission it."""
        if not role_allows(request.membership.role, Action.FABRIC_MANAGE):
            raise PermissionDenied("Your role in this organization does not allow this.")
        port = self.get_org_object(Port.objects.select_related("metro"), public_id=port_id)
        if request.POST.get("decommission"):
            try:
                services.port_decommission(membership=request.membership, port=port)
                messages.success(request, f"Port {port.name} is being decommissioned.")
            except DomainError as exc:
                messages.error(request, exc.message)
            return redirect("fabric:port-detail", port_id=port.public_id)
        form = PortSettingsForm(request.POST)
        if form.is_valid():
            try:
                services.port_update(membership=request.membership, port=port, **form.cleaned_data)
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Port settings saved.")
                return redirect("fabric:port-detail", port_id=port.public_id)
        return self.get(request, port_id, form=form, status=400)


# --- Connections -----------------------------------------------------------------------------
class ConnectionListView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request):
        filterset = ConnectionFilter(request.GET, queryset=selectors.connection_list(org=request.org), request=request)
        connections = filterset.qs if filterset.is_valid() else Connection.objects.none()
        if request.GET.get("export") == "csv":
            return csv_response(
                f"connections-{request.org.slug}",
                [
                    "id",
                    "name",
                    "requester",
                    "a_metro",
                    "a_port",
                    "a_vlan",
                    "z_metro",
                    "z_organization",
                    "z_port",
                    "z_vlan",
                    "bandwidth_mbps",
                    "state",
                    "pending_on",
                    "priority",
                    "redundancy_group",
                    "purchase_order",
                    "created_at",
                ],
                (
                    [
                        c.public_id,
                        c.name,
                        c.organization.slug,
                        c.a_port.metro.code,
                        c.a_port.name,
                        c.a_vlan,
                        c.z_port.metro.code,
                        c.z_port.organization.slug,
                        c.z_port.name,
                        c.z_vlan or "",
                        c.bandwidth_mbps,
                        c.state,
                        c.pending_on,
                        c.priority,
                        c.redundancy_group or "",
                        c.purchase_order,
                        c.created_at.isoformat(),
                    ]
                    for c in connections.iterator(chunk_size=1000)
                ),
            )
        template = "fabric/connection_list.html#connection-table" if request.htmx else "fabric/connection_list.html"
        return render(
            request,
            template,
            {
                "filter": filterset,
                "connections": connections[:200],
                "can_manage": role_allows(request.membership.role, Action.FABRIC_MANAGE),
            },
        )


class ConnectionRequestView(OrgView):
    """Order a connection: "Check price" runs a dry run (htmx fragment), "Request" creates it."""

    required_action = Action.FABRIC_MANAGE
    template_name = "fabric/connection_request.html"

    def _form(self, request, data=None):
        a_ports = selectors.port_list(org=request.org).filter(state=PortState.ACTIVE)
        z_ports = services.connectable_z_ports(request.org).order_by("metro__code", "organization__name", "name")
        initial = {key: request.GET[key] for key in ("a_port", "z_port") if request.GET.get(key)}
        return ConnectionRequestForm(data, a_ports=a_ports, z_ports=z_ports, initial=initial)

    def get(self, request):
        return render(request, self.template_name, {"form": self._form(request)})

    def post(self, request):
        form = self._form(request, request.POST)
        dry_run = "check" in request.POST
        plan = None
        if form.is_valid():
            data = form.cleaned_data
            secondary = (
                services.ConnectionSpec(a_port=data["secondary_a_port"], z_port=data["secondary_z_port"])
                if data["redundant"]
                else None
            )
            try:
                plan = services.connection_request(
                    membership=request.membership,
                    # A price check needs no name yet; a real request does (the service says so).
                    name=data["name"] or ("new connection" if dry_run else ""),
                    a_port=data["a_port"],
                    z_port=data["z_port"],
                    bandwidth_mbps=data["bandwidth_mbps"],
                    a_vlan=data["a_vlan"],
                    purchase_order=data["purchase_order"],
                    secondary=secondary,
                    dry_run=dry_run,
                )
            except DomainError as exc:
                _form_error(form, exc)
            else:
                if not dry_run:
                    first = plan.connections[0]
                    messages.success(request, _created_message(plan))
                    return redirect("fabric:connection-detail", connection_id=first.public_id)
        context = {"form": form, "plan": plan}
        if request.htmx and dry_run:
            # The live quote: always a 200 fragment, with what is missing when there is no plan.
            return render(request, "fabric/connection_request.html#plan", context)
        return render(request, self.template_name, context, status=200 if plan else 400)


POLL_SECONDS = {
    ConnectionState.PENDING_APPROVAL: 10,
    ConnectionState.APPROVED: 2,
    ConnectionState.PROVISIONING: 2,
    ConnectionState.MODIFYING: 2,
    ConnectionState.DEPROVISIONING: 2,
}


def _created_message(plan) -> str:
    first = plan.connections[0]
    what = "Redundant pair requested" if len(plan.connections) > 1 else f"Connection {first.name} requested"
    if first.pending_on == PendingOn.REQUESTER:
        return f"{what}: your organization's policy asks an admin or owner of yours to approve it first."
    if first.state == ConnectionState.PENDING_APPROVAL:
        return f"{what}: waiting for {first.z_port.organization.name} to approve."
    return f"{what}: provisioning has started."


class ConnectionDetailView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request, connection_id):
        try:
            connection = selectors.connection_detail(org=request.org, public_id=connection_id)
        except Connection.DoesNotExist as exc:
            raise Http404 from exc
        can_manage = role_allows(request.membership.role, Action.FABRIC_MANAGE)
        is_requester = connection.organization_id == request.org.pk
        is_z_side = connection.z_port.organization_id == request.org.pk
        allowed = CONNECTION_TRANSITIONS[connection.state]
        held = connection.pending_on == PendingOn.REQUESTER  # a policy wants the requester's admins first
        actions = {
            "approve": can_manage and is_z_side and not held and ConnectionState.APPROVED in allowed,
            "reject": can_manage and is_z_side and not held and ConnectionState.REJECTED in allowed,
            "authorize": is_requester
            and held
            and connection.state == ConnectionState.PENDING_APPROVAL
            and request.membership.role in (Role.OWNER, Role.ADMIN),
            "cancel": can_manage and is_requester and ConnectionState.CANCELLED in allowed,
            "modify": can_manage and is_requester and ConnectionState.MODIFYING in allowed,
            "deprovision": can_manage
            and is_requester
            and connection.state in (ConnectionState.ACTIVE, ConnectionState.FAILED),
            "retry": can_manage and is_requester and connection.state == ConnectionState.FAILED,
        }
        workflows = list(connection.workflows.all())
        context = {
            "connection": connection,
            "actions": actions,
            "workflow": workflows[0] if workflows else None,
            "latency": services.latency_leg(connection.a_port.metro, connection.z_port.metro),
            "quote": pricing.connection_quote(
                a_metro=connection.a_port.metro,
                z_metro=connection.z_port.metro,
                bandwidth_mbps=connection.bandwidth_mbps,
            ),
            "approve_form": ApproveForm(),
            "reject_form": RejectForm(),
            "bandwidth_form": BandwidthForm(initial={"bandwidth_mbps": connection.bandwidth_mbps}),
            # Refresh while work runs (every 2 s), and while waiting for the other side (every 10 s).
            "poll_seconds": POLL_SECONDS.get(connection.state),
        }
        if not request.htmx:
            context.update(utilisation_context(request, subject=connection, window=chosen_window(request)))
        template = "fabric/connection_detail.html#live" if request.htmx else "fabric/connection_detail.html"
        return render(request, template, context)


class ConnectionActionView(OrgView):
    """POST-only: approve, reject, cancel, modify, deprovision, retry. Errors come back as messages."""

    required_action = Action.FABRIC_MANAGE

    def post(self, request, connection_id, verb):
        connection = get_object_or_404(selectors.connection_list(org=request.org), public_id=connection_id)
        membership = request.membership
        try:
            if verb == "approve":
                form = ApproveForm(request.POST)
                if not form.is_valid():
                    raise DomainError(" ".join(m for errors in form.errors.values() for m in errors))
                connection = services.connection_approve(
                    membership=membership, connection=connection, z_vlan=form.cleaned_data["z_vlan"]
                )
                if connection.state == ConnectionState.PENDING_APPROVAL:
                    messages.success(request, f"Approved: now waiting for {connection.z_port.organization.name}.")
                else:
                    messages.success(request, "Approved: provisioning has started.")
            elif verb == "reject":
                services.connection_reject(
                    membership=membership, connection=connection, reason=request.POST.get("reason", "")
                )
                messages.success(request, "Request rejected; the requester sees your reason.")
            elif verb == "cancel":
                services.connection_cancel(membership=membership, connection=connection)
                messages.success(request, "Request cancelled.")
            elif verb == "modify":
                form = BandwidthForm(request.POST)
                if not form.is_valid():
                    raise DomainError(" ".join(m for errors in form.errors.values() for m in errors))
                services.connection_modify_bandwidth(membership=membership, connection=connection, **form.cleaned_data)
                messages.success(request, "Bandwidth change started.")
            elif verb == "deprovision":
                services.connection_deprovision(membership=membership, connection=connection)
                messages.success(request, "Deprovisioning started.")
            elif verb == "retry":
                services.connection_retry(membership=membership, connection=connection)
                messages.success(request, "Retrying.")
            else:
                raise Http404
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect(safe_next(request, reverse("fabric:connection-detail", args=[connection.public_id])))


class IncomingRequestsView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request):
        return render(
            request,
            "fabric/incoming.html",
            {
                "requests": selectors.incoming_requests(org=request.org),
                "can_manage": role_allows(request.membership.role, Action.FABRIC_MANAGE),
                "approve_form": ApproveForm(),
                "reject_form": RejectForm(),
            },
        )


# --- Utilisation charts (telemetry) ----------------------------------------------------------
UTILISATION_WINDOWS = {  # picker label -> (window, step in seconds)
    "1h": (timedelta(hours=1), 60),
    "24h": (timedelta(hours=24), 300),
    "7d": (timedelta(days=7), 1800),
    "30d": (timedelta(days=30), 3600),
}
DEFAULT_UTILISATION_WINDOW = "24h"
# Refresh the chart of a connection in service this often (new samples are rolled up every minute).
UTILISATION_REFRESH_SECONDS = 60


def _utilisation_figure(stats: telemetry.Stats) -> dict:
    """A plotly figure (as plain data for static/js/utilisation.js) of in and out Mbps."""
    times = [p.time.isoformat() for p in stats.points]
    data = [
        {"x": times, "y": [p.bps_in / 1e6 for p in stats.points], "name": "In", "type": "scatter", "mode": "lines"},
        {"x": times, "y": [p.bps_out / 1e6 for p in stats.points], "name": "Out", "type": "scatter", "mode": "lines"},
    ]
    if stats.bandwidth_bps and times:
        mbps = stats.bandwidth_bps / 1e6
        data.append(
            {
                "x": [times[0], times[-1]],
                "y": [mbps, mbps],
                "name": "Bandwidth",
                "type": "scatter",
                "mode": "lines",
                "line": {"dash": "dot", "color": "#888"},
                "hoverinfo": "skip",
            }
        )
    layout = {
        "height": 320,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
        "yaxis": {"title": {"text": "Mbps"}, "rangemode": "tozero"},
        "xaxis": {"type": "date"},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "x unified",
    }
    return {"data": data, "layout": layout, "config": {"displaylogo": False, "responsive": True}}


def chosen_window(request) -> str:
    """The chart window the detail page was asked for (the picker without JavaScript), or the default."""
    window = request.GET.get("window")
    return window if window in UTILISATION_WINDOWS else DEFAULT_UTILISATION_WINDOW


def utilisation_context(request, *, subject, window: str | None = None) -> dict:
    """Context of ``fabric/partials/utilisation.html`` for a connection or a port."""
    window = window or DEFAULT_UTILISATION_WINDOW
    span, step = UTILISATION_WINDOWS[window]
    until = timezone.now()
    if isinstance(subject, Port):
        stats = telemetry.port_stats(subject, since=until - span, until=until, step_seconds=step)
        url = reverse("fabric:port-utilisation", args=[subject.public_id])
        live = subject.state == PortState.ACTIVE
    else:
        stats = telemetry.connection_stats(subject, since=until - span, until=until, step_seconds=step)
        url = reverse("fabric:connection-utilisation", args=[subject.public_id])
        live = subject.state == ConnectionState.ACTIVE
    rows = [
        {
            "time": p.time,
            "in_mbps": p.bps_in / 1e6,
            "out_mbps": p.bps_out / 1e6,
            "percent": stats.percent(max(p.bps_in, p.bps_out)),
        }
        for p in stats.points
    ]
    summary = stats.summary
    return {
        "traffic": {
            "url": url,
            "window": window,
            "windows": list(UTILISATION_WINDOWS),
            "step_minutes": step // 60,
            "refresh_seconds": UTILISATION_REFRESH_SECONDS if live else None,
            "figure": _utilisation_figure(stats) if rows else None,
            "rows": rows,
            "avg_in_mbps": summary["avg_bps_in"] / 1e6,
            "avg_out_mbps": summary["avg_bps_out"] / 1e6,
            "p95_percent": summary["p95_percent"],
            "p95_mbps": max(summary["p95_bps_in"] or 0, summary["p95_bps_out"] or 0) / 1e6,
            "capacity_mbps": stats.bandwidth_bps / 1e6 if stats.bandwidth_bps else None,
        }
    }


class _UtilisationPartialView(OrgView):
    """The chart fragment for the window picker and the live refresh (htmx swaps it in)."""

    required_action = Action.FABRIC_VIEW

    def render_chart(self, request, subject):
        window = request.GET.get("window") or DEFAULT_UTILISATION_WINDOW
        if window not in UTILISATION_WINDOWS:
            return render(
                request,
                "fabric/partials/utilisation_error.html",
                {"message": f"Unknown window {window[:20]!r}: choose one of {', '.join(UTILISATION_WINDOWS)}."},
                status=400,
            )
        return render(
            request, "fabric/partials/utilisation.html", utilisation_context(request, subject=subject, window=window)
        )


class ConnectionUtilisationView(_UtilisationPartialView):
    def get(self, request, connection_id):
        connection = get_object_or_404(selectors.connection_list(org=request.org), public_id=connection_id)
        return self.render_chart(request, connection)


class PortUtilisationView(_UtilisationPartialView):
    def get(self, request, port_id):
        return self.render_chart(request, self.get_org_object(Port.objects.select_related("metro"), public_id=port_id))
