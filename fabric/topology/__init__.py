"""Topology: the organization's network as a graph (``graph``) and as plotly figures (``charts``).

Visibility follows the connection pages exactly: my ports, and of another organization only the
ports at the far end of a connection I can see, with no more of them than a connection page shows.
"""

from fabric.topology.charts import (
    STATE_STYLES,
    bandwidth_label,
    connection_table,
    figure_script,
    great_circle_path,
    logical_figure,
    map_figure,
    port_table,
    rate_label,
)
from fabric.topology.graph import Topology, TopologyFilters, filter_choices, topology_filters, topology_graph

__all__ = [
    "STATE_STYLES",
    "Topology",
    "TopologyFilters",
    "bandwidth_label",
    "connection_table",
    "figure_script",
    "filter_choices",
    "great_circle_path",
    "logical_figure",
    "map_figure",
    "port_table",
    "rate_label",
    "topology_filters",
    "topology_graph",
]
