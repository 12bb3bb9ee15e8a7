"""Marketplace pages for enterprises: the catalog, offering pages, compare, connecting and my orders.

Every read goes through ``marketplace.search`` / ``marketplace.selectors`` and every write through
``marketplace.services``; the catalog and ``GET /api/v1/offerings/`` run the same search.
"""

import re

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from fabric.choices import PortState
from fabric.selectors import port_list
from hub.errors import DomainError
from hub.roles import Action, role_allows
from hub.views import OrgView
from marketplace import search, selectors, services
from marketplace.forms import OrderForm
from marketplace.models import AccessPoint, Offering

MAX_COMPARED = selectors.MAX_COMPARED
SETTLING = {"PENDING_PROVIDER", "PROVISIONING", "ENDING"}
_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")


def _visible_offering(request, offering_id) -> Offering:
    return get_object_or_404(Offering.objects.visible_to(request.org).select_related("provider"), public_id=offering_id)


class CatalogView(OrgView):
    """Search, facets, sort and pages; an htmx request gets only the facets and results fragment."""

    required_action = Action.MARKETPLACE_VIEW

    def get(self, request):
        page = search.catalog_page(request.org, request.GET)
        compare_ids = selectors.compare_ids(request.GET)
        context = {
            "page": page,
            "facet_groups": _facet_groups(page),
            "sorts": search.SORTS,
            "facet_labels": search.FACET_LABELS,
            "compare_ids": compare_ids,
            "compare_url": f"{reverse('marketplace:compare')}?{urlencode({'ids': ','.join(compare_ids)})}",
            "too_many_compared": len(compare_ids) > MAX_COMPARED,
            "max_compared": MAX_COMPARED,
            "page_links": _page_links(page, compare_ids),
            "hidden_compare_ids": [i for i in compare_ids if i not in {str(o.public_id) for o in page.offerings}],
        }
        template = "marketplace/catalog.html#catalog-body" if request.htmx else "marketplace/catalog.html"
        return render(request, template, context)


FACETS_SHOWN = 8  # values per facet before "more"


def _facet_groups(page: search.CatalogPage) -> list[dict]:
    """The sidebar: each facet with its values (checked when selected), the first few shown."""
    groups = []
    for name in search.FACETS:
        chosen = {v.lower() for v in page.query.selected[name]}
        values = [
            {**row, "label": row.get("label", row["value"]), "checked": row["value"].lower() in chosen}
            for row in page.facets[name]
        ]
        if values:
            groups.append(
                {
                    "name": name,
                    "label": search.FACET_LABELS[name],
                    "shown": values[:FACETS_SHOWN],
                    "more": values[FACETS_SHOWN:],
                    "more_checked": any(v["checked"] for v in values[FACETS_SHOWN:]),
                }
            )
    return groups


def _page_links(page: search.CatalogPage, compare_ids: list[str]) -> dict:
    def link(number):
        return "?" + urlencode([*page.query.params(page=number), *(("ids", i) for i in compare_ids)])

    return {
        "previous": link(page.page - 1) if page.has_previous else "",
        "next": link(page.page + 1) if page.has_next else "",
        "first": link(1),
        "last": link(page.num_pages),
    }


class OfferingDetailView(OrgView):
    required_action = Action.MARKETPLACE_VIEW

    def get(self, request, offering_id):
        offering = _visible_offering(request, offering_id)
        context = selectors.offering_page(org=request.org, offering=offering)
        context["can_order"] = role_allows(request.membership.role, Action.MARKETPLACE_ORDER)
        return render(request, "marketplace/offering_detail.html", context)


class CompareView(OrgView):
    """Up to four offerings side by side; the selection is the ``ids`` parameter of the URL."""

    required_action = Action.MARKETPLACE_VIEW

    def get(self, request):
        ids = selectors.compare_ids(request.GET)
        status = 200
        if len(ids) > MAX_COMPARED:
            messages.error(
                request,
                f"You can compare up to {MAX_COMPARED} offerings; {len(ids) - MAX_COMPARED} more were not added. "
                "Remove one to add another.",
            )
            ids, status = ids[:MAX_COMPARED], 400
        comparison = selectors.offering_comparison(org=request.org, public_ids=ids)
        for column in comparison["columns"]:
            remaining = [i for i in ids if i != str(column["offering"].public_id)]
            column["remove_url"] = f"?{urlencode({'ids': ','.join(remaining)})}" if remaining else "?"
        return render(request, "marketplace/compare.html", {**comparison, "ids": ids}, status=status)


class OrderCreateView(OrgView):
    """Connect to an offering: the quote (fabric price + the offering's price + latency) before confirming."""

    required_action = Action.MARKETPLACE_ORDER
    template_name = "marketplace/order_form.html"

    def _form(self, request, offering, data=None):
        a_ports = port_list(org=request.org).filter(state=PortState.ACTIVE).order_by("metro__code", "name")
        access_points = AccessPoint.objects.filter(offering=offering).select_related("port__metro")
        initial = {}
        if request.GET.get("access_point"):
            initial["access_point"] = request.GET["access_point"]
        return OrderForm(data, a_ports=a_ports, access_points=access_points, initial=initial)

    def _render(self, request, offering, form, result=None, status=200, partial=False):
        context = {"offering": offering, "form": form, "result": result}
        template = f"{self.template_name}#quote" if partial else self.template_name
        return render(request, template, context, status=status)

    def _dry_run(self, request, offering, form):
        try:
            return services.order_create(
                membership=request.membership, offering=offering, dry_run=True, **_order_fields(form)
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            return None

    def get(self, request, offering_id):
        offering = _visible_offering(request, offering_id)
        form = self._form(request, offering)
        return self._render(request, offering, form)

    def post(self, request, offering_id):
        offering = _visible_offering(request, offering_id)
        _refuse_foreign_port(request)
        form = self._form(request, offering, request.POST)
        check = "check" in request.POST
        if not form.is_valid():
            return self._render(request, offering, form, status=200 if check else 400, partial=check)
        if check:
            return self._render(request, offering, form, self._dry_run(request, offering, form), partial=True)
        try:
            result = services.order_create(membership=request.membership, offering=offering, **_order_fields(form))
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            return self._render(request, offering, form, status=400)
        order = result.order
        if order.connection.state == "PENDING_APPROVAL":
            note = f"waiting for {offering.provider.name} to approve."
        else:
            note = "approved at once; it is being provisioned."
        messages.success(request, f"Ordered {offering.name}: {note}")
        return redirect("marketplace:order-list")


def _refuse_foreign_port(request) -> None:
    """Another organization's port is "not found", as everywhere else (not a mere form error)."""
    port_id = request.POST.get("a_port", "")
    if _UUID.match(port_id) and not port_list(org=request.org).filter(public_id=port_id).exists():
        raise Http404("No such port.")


def _order_fields(form) -> dict:
    data = form.cleaned_data
    return {
        "access_point": data["access_point"],
        "a_port": data["a_port"],
        "bandwidth_mbps": data["bandwidth_mbps"],
        "purchase_order": data["purchase_order"],
    }


class OrderListView(OrgView):
    """My organization's orders; each status follows its fabric connection."""

    required_action = Action.MARKETPLACE_VIEW

    def get(self, request):
        orders = list(selectors.order_list(org=request.org)[:200])
        # The list refreshes itself while an order is still on its way (and stops once all have settled).
        settling = any(order.status in SETTLING for order in orders)
        template = "marketplace/order_list.html#orders" if request.htmx else "marketplace/order_list.html"
        return render(request, template, {"orders": orders, "settling": settling})
