"""Topology pages: the geographic map and the logical view of the organization's network.

Each page serves itself whole or, for htmx, a fragment: the figure (the filter form swaps it) or the
table alternative (loaded when its disclosure is opened, so a 1,000-connection page stays small;
``?part=table`` without htmx renders the page with the table open). ``static/js/topology.js`` draws
the figure from its JSON data island.
"""

from collections import Counter
from urllib.parse import urlencode

from django.shortcuts import render
from django.urls import reverse

from fabric import topology as topo
from fabric.choices import ConnectionState
from hub.errors import DomainError
from hub.roles import Action
from hub.views import OrgView

_ANY_ID = "00000000-0000-0000-0000-000000000000"


class _TopologyView(OrgView):
    required_action = Action.FABRIC_VIEW
    current: str
    title: str

    def figure(self, topology: topo.Topology) -> dict:
        raise NotImplementedError

    def get(self, request):
        error = None
        try:
            filters = topo.topology_filters(request.GET)
        except DomainError as exc:
            filters, error = topo.TopologyFilters(), exc.message
        topology = topo.Topology() if error else topo.topology_graph(org=request.org, filters=filters)
        params = filters.as_params()
        show_table = request.GET.get("part") == "table"
        context = {
            "current": self.current,
            "title": self.title,
            "error": error,
            "topology": topology,
            "metros": topology.nodes_of("metro"),
            "port_count": len(topology.nodes_of("port")),
            "show_table": show_table,
            "table_url": f"{request.path}?{urlencode({**params, 'part': 'table'})}",
            "connection_url": reverse("fabric:connection-detail", args=[_ANY_ID]),
        }
        status = 400 if error else 200
        if show_table:
            context |= {
                "connections": topo.connection_table(topology),
                "ports": topo.port_table(topology),
                "connection_url_prefix": context["connection_url"].removesuffix(f"{_ANY_ID}/"),
            }
            if request.htmx:
                return render(request, "fabric/partials/topology_tables.html", context, status=status)
        api = reverse("topology")
        by_state = Counter(edge["state"] for edge in topology.edges)
        figure = self.figure(topology)
        context |= {
            "figure": figure,
            "figure_script": topo.figure_script(figure, "topology-figure-data"),
            "by_state": [(ConnectionState(state).label, n) for state, n in by_state.most_common()],
            "downloads": {fmt: f"{api}?{urlencode({**params, 'format': fmt})}" for fmt in ("json", "graphml")},
        }
        if request.htmx:  # the filter form: the figure and its summary, not the form
            return render(request, "fabric/partials/topology_view.html", context, status=status)
        context |= {
            "selected": {name: request.GET.get(name, "") for name in ("state", "metro", "provider", "region")},
            "choices": topo.filter_choices(org=request.org),
            "action": request.path,
        }
        return render(request, "fabric/topology.html", context, status=status)


class TopologyMapView(_TopologyView):
    current = "map"
    title = "Network map"

    def figure(self, topology):
        return topo.map_figure(topology)


class TopologyLogicalView(_TopologyView):
    current = "logical"
    title = "Logical view"

    def figure(self, topology):
        return topo.logical_figure(topology)
