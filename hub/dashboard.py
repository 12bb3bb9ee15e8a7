"""Home dashboard tiles: an extension point so higher apps fill the hub's home page.

``HUB_DASHBOARD_TILES`` lists dotted paths of callables ``tile(request) -> Tile | None``; each
renders its own template. The hub never imports the apps that provide them.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Tile:
    title: str
    template: str
    context: dict = field(default_factory=dict)
    link: str = ""


def dashboard_tiles(request) -> list[Tile]:
    tiles = []
    for path in getattr(settings, "HUB_DASHBOARD_TILES", []):
        tile = import_string(path)(request)
        if tile is not None:
            tiles.append(tile)
    return tiles
