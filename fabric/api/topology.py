"""``GET /api/v1/topology/``: the organization's network as nodes and edges, as JSON or GraphML."""

from xml.sax.saxutils import escape, quoteattr

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from fabric import topology as topo
from fabric.choices import ConnectionState, PendingOn, Priority, Region
from hub.api.renderers import OrjsonRenderer
from hub.errors import DomainError
from hub.roles import Action

GRAPHML_MEDIA_TYPE = "application/graphml+xml"


# --- Output documentation (the view writes plain dicts from fabric.topology: 1,000 edges through
# serializers would cost more than the whole query) ---------------------------------------------
class UtilisationSerializer(serializers.Serializer):
    bps_in = serializers.IntegerField(help_text="Average bits per second received over the last hour.")
    bps_out = serializers.IntegerField(help_text="Average bits per second sent over the last hour.")
    percent = serializers.FloatField(allow_null=True, help_text="The busier direction, percent of the bandwidth.")


class TopologyNodeSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`metro:<code>`, `org:<slug>` or `port:<port id>`.")
    kind = serializers.ChoiceField(choices=["metro", "port", "provider", "organization"])
    label = serializers.CharField()
    mine = serializers.BooleanField(required=False, help_text="Ports and organizations: yours.")
    code = serializers.CharField(required=False, help_text="Metros.")
    country = serializers.CharField(required=False, help_text="Metros.")
    region = serializers.ChoiceField(choices=Region.choices, required=False, help_text="Metros.")
    latitude = serializers.FloatField(required=False, help_text="Metros.")
    longitude = serializers.FloatField(required=False, help_text="Metros.")
    ports = serializers.IntegerField(required=False, help_text="Metros: ports of the graph in the metro.")
    metro = serializers.CharField(required=False, help_text="Ports: the metro node's id.")
    organization = serializers.CharField(required=False, help_text="Ports: the owner's node id.")
    speed_mbps = serializers.IntegerField(required=False, help_text="Your ports only.")
    committed_mbps = serializers.IntegerField(required=False, help_text="Your ports only.")
    state = serializers.CharField(required=False, help_text="Your ports only.")


class TopologyEdgeSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The connection's id.")
    source = serializers.CharField(help_text="The A-side port's node id.")
    target = serializers.CharField(help_text="The Z-side port's node id.")
    label = serializers.CharField(help_text="The connection's name.")
    state = serializers.ChoiceField(choices=ConnectionState.choices)
    pending_on = serializers.ChoiceField(choices=PendingOn.choices)
    bandwidth_mbps = serializers.IntegerField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    direction = serializers.ChoiceField(
        choices=["outgoing", "incoming"], help_text="outgoing: you requested it; incoming: it lands on your port."
    )
    distance_km = serializers.FloatField(help_text="Great-circle distance between the two metros.")
    latency_ms = serializers.FloatField(help_text="Estimated round-trip time (P95).")
    utilisation = UtilisationSerializer(
        allow_null=True, help_text="Null when the connection is not in service or sent no telemetry in the last hour."
    )


class TopologySerializer(serializers.Serializer):
    nodes = TopologyNodeSerializer(many=True)
    edges = TopologyEdgeSerializer(many=True)


# --- GraphML -----------------------------------------------------------------------------------
_GRAPHML_TYPES = {bool: "boolean", int: "long", float: "double", str: "string"}
_GRAPHML_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
    'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
)


_MARKUP = frozenset("&<>")
_ATTRIBUTE_MARKUP = frozenset("&<>\"'\n\r\t")


def _graphml_value(value) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is str:
        return escape(value) if not _MARKUP.isdisjoint(value) else value
    return str(value)  # a number: nothing to escape


def _graphml_attribute(value: str) -> str:
    return quoteattr(value) if not _ATTRIBUTE_MARKUP.isdisjoint(value) else f'"{value}"'


def topology_graphml(topology: topo.Topology) -> str:
    """The graph as GraphML: a directed graph whose edges are connections (a redundant pair is two
    edges between the same ports), each attribute declared once with its type.

    GraphML attributes are scalars, so an edge's utilisation becomes ``utilisation_bps_in`` and so
    on, and an empty value is left out. Written directly rather than through networkx: for 1,000
    connections that is some ten times faster. Only text with markup in it is escaped.
    """
    skipped = ("id", "source", "target", "utilisation")
    elements = []
    for kind, items in (("node", topology.nodes), ("edge", topology.edges)):
        for item in items:
            attributes = {k: v for k, v in item.items() if v is not None and k not in skipped}
            for key, value in (item.get("utilisation") or {}).items():
                if value is not None:
                    attributes[f"utilisation_{key}"] = value
            elements.append((kind, item, attributes))
    keys: dict[tuple[str, str], str] = {}
    declarations = []
    for kind, _, attributes in elements:
        for name, value in attributes.items():
            if (kind, name) not in keys:
                keys[(kind, name)] = key = f"{kind[0]}{len(keys)}"
                declarations.append(
                    f'<key id="{key}" for="{kind}" attr.name={quoteattr(name)} '
                    f'attr.type="{_GRAPHML_TYPES[type(value)]}"/>\n'
                )
    opening = {
        kind: {name: f'<data key="{key}">' for (k, name), key in keys.items() if k == kind} for kind in ("node", "edge")
    }
    lines = [_GRAPHML_HEAD, *declarations, '<graph edgedefault="directed">\n']
    for kind, item, attributes in elements:
        tags = opening[kind]
        data = "".join(f"{tags[name]}{_graphml_value(value)}</data>" for name, value in attributes.items())
        ends = (
            f" source={_graphml_attribute(item['source'])} target={_graphml_attribute(item['target'])}"
            if kind == "edge"
            else ""
        )
        lines.append(f"<{kind} id={_graphml_attribute(str(item['id']))}{ends}>{data}</{kind}>\n")
    lines.append("</graph>\n</graphml>\n")
    return "".join(lines)


class GraphMLRenderer(renderers.BaseRenderer):
    media_type = GRAPHML_MEDIA_TYPE
    format = "graphml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode(self.charset) if isinstance(data, str) else data


FILTER_PARAMETERS = [
    OpenApiParameter(
        "state",
        str,
        description="Connection states, comma-separated or repeated (default: the live states, all but "
        "DEPROVISIONED, REJECTED and CANCELLED). Values: " + ", ".join(ConnectionState.values),
    ),
    OpenApiParameter("metro", str, description="Metro codes (e.g. FR,NY): connections with either end there."),
    OpenApiParameter("provider", str, description="Provider slugs: connections with either end at that provider."),
    OpenApiParameter("region", str, description="Regions (AMER, EMEA, APAC): connections with either end there."),
    OpenApiParameter(
        "format",
        str,
        enum=["json", "graphml"],
        description="Download as a file (Content-Disposition: attachment): `json` or `graphml`. "
        "Without it the JSON is returned inline; `Accept: application/graphml+xml` also selects GraphML.",
    ),
]


class TopologyView(APIView):
    """Your network as a graph: metros, your ports, the ports and organizations at the other end of
    your connections (nodes), and the connections you can see (edges) with state, bandwidth,
    utilisation and a latency estimate."""

    required_action = Action.FABRIC_VIEW
    renderer_classes = [OrjsonRenderer, GraphMLRenderer]

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "application/json"): TopologySerializer,
            (200, GRAPHML_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.STR, description="GraphML document"),
            400: OpenApiResponse(description="A filter names nothing (unknown state, metro, provider or region)."),
        },
    )
    def get(self, request):
        filters = topo.topology_filters(request.query_params)
        topology = topo.topology_graph(org=request._request.org, filters=filters)
        graphml = isinstance(request.accepted_renderer, GraphMLRenderer)
        response = Response(topology_graphml(topology) if graphml else topology.as_dict())
        requested = request.query_params.get("format")
        if requested:
            stamp = timezone.now().strftime("%Y%m%d-%H%M")
            filename = f"topology-{request._request.org.slug}-{stamp}.{requested}"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def perform_content_negotiation(self, request, force=False):
        requested = request.query_params.get("format")
        if requested and requested not in ("json", "graphml") and not force:
            raise DomainError(
                f"Unknown format {requested!r}: use json or graphml.", code="invalid_format", field="format"
            )
        return super().perform_content_negotiation(request, force=force)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors keep the one JSON envelope, whichever format was asked for.
        if response.status_code >= 400 and isinstance(getattr(request, "accepted_renderer", None), GraphMLRenderer):
            request.accepted_renderer = OrjsonRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)
