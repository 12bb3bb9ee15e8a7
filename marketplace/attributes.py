"""Category-specific offering attributes: one small schema per category.

``validate_attributes`` returns a cleaned copy or raises ``DomainError`` with
``field="attributes.<name>"`` and a message a provider can act on; a bad attribute is never a 500.
"""

from dataclasses import dataclass
from decimal import Decimal

from hub.errors import DomainError
from marketplace.choices import Category


@dataclass(frozen=True)
class Attr:
    kind: str  # "str", "int" or "number"
    required: bool = False
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    help: str = ""


_KIND_LABEL = {"str": "text", "int": "a whole number", "number": "a number"}

SCHEMAS: dict[str, dict[str, Attr]] = {
    Category.GPU_CLOUD: {
        "accelerator": Attr("str", required=True, help="GPU or accelerator model, e.g. H100"),
        "gpu_count": Attr("int", required=True, minimum=1),
        "gpu_memory_gb": Attr("number", required=True, minimum=0, exclusive_minimum=True),
        "vcpus": Attr("number", minimum=0, exclusive_minimum=True),
        "ram_gb": Attr("number", minimum=0, exclusive_minimum=True),
        "spot_price_per_hour": Attr("number", minimum=0),
        "region": Attr("str", help="the provider's own region names"),
    },
    Category.MODEL_VENDOR: {
        "context_window": Attr("int", required=True, minimum=1),
        "input_price_per_mtok": Attr("number", required=True, minimum=0),
        "output_price_per_mtok": Attr("number", minimum=0, help="required unless the modality is embedding"),
        "modality": Attr("str", required=True, help="text, text+image-in, embedding, ..."),
    },
    Category.DATA_PLATFORM: {
        "storage_type": Attr("str", required=True, help="object, lakehouse, vector, warehouse, ..."),
        "egress_price_per_gb": Attr("number", minimum=0),
        "max_throughput_gbps": Attr("number", minimum=0, exclusive_minimum=True),
        "durability": Attr("str", help="e.g. 11 nines"),
    },
    Category.NETWORK_SERVICE: {
        "service_type": Attr("str", required=True, help="cloud-router, internet-exchange, transit, ..."),
        "max_bandwidth_mbps": Attr("int", minimum=1),
        "sla_availability_pct": Attr("number", minimum=0, maximum=100),
    },
    Category.SECURITY_SERVICE: {
        "service_type": Attr("str", required=True, help="ddos-protection, firewall, ai-gateway, ..."),
        "inspection_gbps": Attr("number", minimum=0, exclusive_minimum=True),
        "sla_availability_pct": Attr("number", minimum=0, maximum=100),
    },
}


def _error(name: str, message: str) -> DomainError:
    return DomainError(message, code="invalid_attribute", field=f"attributes.{name}")


def _clean_value(name: str, spec: Attr, value):
    if spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise _error(name, f"{name} must be non-empty text.")
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _error(name, f"{name} must be {_KIND_LABEL[spec.kind]}, not {type(value).__name__}.")
    if spec.kind == "int":
        if isinstance(value, float | Decimal) and value != int(value):
            raise _error(name, f"{name} must be a whole number.")
        value = int(value)
    elif isinstance(value, Decimal):
        value = float(value)
    if spec.minimum is not None:
        if spec.exclusive_minimum and value <= spec.minimum:
            raise _error(name, f"{name} must be greater than {spec.minimum:g}.")
        if not spec.exclusive_minimum and value < spec.minimum:
            raise _error(name, f"{name} must be at least {spec.minimum:g}.")
    if spec.maximum is not None and value > spec.maximum:
        raise _error(name, f"{name} must be at most {spec.maximum:g}.")
    return value


def validate_attributes(category: str, attributes) -> dict:
    """A cleaned copy of ``attributes`` for ``category``, or a field error on the first bad one."""
    if category not in SCHEMAS:
        raise DomainError("Unknown category.", field="category")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise DomainError("Attributes must be an object of name -> value.", field="attributes")
    schema = SCHEMAS[category]
    unknown = sorted(set(attributes) - set(schema))
    if unknown:
        allowed = ", ".join(schema)
        raise _error(unknown[0], f"{unknown[0]} is not an attribute of this category (allowed: {allowed}).")
    cleaned = {}
    for name, spec in schema.items():
        value = attributes.get(name)
        if value is None or value == "":
            if spec.required:
                raise _error(name, f"{name} is required for this category.")
            continue
        cleaned[name] = _clean_value(name, spec, value)
    if (
        category == Category.MODEL_VENDOR
        and cleaned.get("modality") != "embedding"
        and "output_price_per_mtok" not in cleaned
    ):
        raise _error("output_price_per_mtok", "output_price_per_mtok is required unless the modality is embedding.")
    return cleaned
