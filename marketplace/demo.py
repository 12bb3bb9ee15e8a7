"""Demo marketplace for ``seed_demo``: GPU clouds and model vendors from public list prices, plus a few
hand-written data, network and security listings of ``demo-provider``.

The data and its provenance are in ``marketplace/data/`` (see its README). Organizations, members and
ports are written directly, like ``fabric.demo`` does (ports are created already ACTIVE); profiles,
offerings, access points and publishing go through ``marketplace.services``. Idempotent: a second run
creates nothing, and a listing someone retired is left retired.
"""

import csv
import functools
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils.text import slugify

from fabric.choices import PortSpeed, PortState
from fabric.models import Metro, Port
from hub.choices import OrganizationKind, Role
from hub.models import Membership, Organization, User
from marketplace import services
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit
from marketplace.models import AccessPoint, Offering, ProviderProfile

DATA_DIR = Path(__file__).resolve().parent / "data"
GPU_CSV = DATA_DIR / "gpu_offerings.csv"
MODEL_CSV = DATA_DIR / "model_offerings.csv"

BANDWIDTHS_MBPS = [1_000, 10_000, 100_000]
PORT_SPEED = PortSpeed.G100
PRICE_UNVERIFIED = "price-unverified"
# A GCP region priced under this share of the median of the type's other regions is left out (README caveat).
GCP_OUTLIER_RATIO = Decimal("0.6")
DATA_DATE = "2026-11-27"


@dataclass(frozen=True)
class DemoProvider:
    slug: str
    name: str
    website: str
    hq_country: str
    # Model vendors only: where their API is reachable in the demo (an assumption, not data).
    metros: tuple[str, ...] = ()
    approval: str = ApprovalMode.MANUAL
    certifications: tuple[str, ...] = ()


AWS = DemoProvider("aws", "Amazon Web Services", "https://aws.amazon.com", "US", ("SE", "DC"))
GCP = DemoProvider("gcp", "Google Cloud", "https://cloud.google.com", "US", ("DC",))

# The ``provider`` column of gpu_offerings.csv.
GPU_CLOUDS: dict[str, DemoProvider] = {
    "Lambda": DemoProvider("lambda", "Lambda", "https://lambda.ai", "US"),
    "RunPod": DemoProvider("runpod", "RunPod", "https://www.runpod.io", "US", approval=ApprovalMode.AUTOMATIC),
    "AWS": AWS,
    "GCP": GCP,
}

# The ``vendor`` column of model_offerings.csv. Amazon (Nova) and Google (Gemini) are listed by the
# AWS and GCP providers, so a company has one profile. The metros are demo assumptions near each vendor's
# HQ: two for the smaller catalogues, one for the four largest (OpenAI, Mistral AI, Google, xAI), which
# keeps the seed at well under a thousand access points.
MODEL_VENDORS: dict[str, DemoProvider] = {
    "AI21 Labs": DemoProvider("ai21", "AI21 Labs", "https://www.ai21.com", "IL", ("TA",)),
    "Alibaba Cloud (Qwen)": DemoProvider(
        "qwen", "Alibaba Cloud (Qwen)", "https://www.alibabacloud.com", "CN", ("SH", "SG")
    ),
    "Amazon": AWS,
    "Anthropic": DemoProvider("anthropic", "Anthropic", "https://www.anthropic.com", "US", ("SV", "DC")),
    "Cohere": DemoProvider("cohere", "Cohere", "https://cohere.com", "CA", ("TR", "NY")),
    "DeepSeek": DemoProvider("deepseek", "DeepSeek", "https://www.deepseek.com", "CN", ("SH", "HK")),
    "Google": GCP,
    "MiniMax": DemoProvider("minimax", "MiniMax", "https://www.minimax.io", "CN", ("SH", "SG")),
    "Mistral AI": DemoProvider(
        "mistral-ai", "Mistral AI", "https://mistral.ai", "FR", ("PA",), approval=ApprovalMode.AUTOMATIC
    ),
    "Moonshot AI": DemoProvider("moonshot-ai", "Moonshot AI", "https://www.moonshot.ai", "CN", ("BJ", "SG")),
    "OpenAI": DemoProvider("openai", "OpenAI", "https://openai.com", "US", ("SV",)),
    "Perplexity": DemoProvider("perplexity", "Perplexity", "https://www.perplexity.ai", "US", ("SV",)),
    "Voyage AI": DemoProvider("voyage-ai", "Voyage AI", "https://www.voyageai.com", "US", ("SV",)),
    "xAI": DemoProvider("xai", "xAI", "https://x.ai", "US", ("SV",)),
    "Zhipu AI (Z.ai)": DemoProvider("zai", "Zhipu AI (Z.ai)", "https://z.ai", "CN", ("BJ", "SG")),
}

# The provider created by seed_demo itself; it gets a profile and the hand-written listings below.
DEMO_PROVIDER = DemoProvider(
    "demo-provider", "Demo Provider", "", "DE", certifications=("ISO 27001 (demo)", "SOC 2 Type II (demo)")
)

# (category, name, price, unit, metros, summary, attributes)
HAND_WRITTEN = [
    (
        Category.DATA_PLATFORM,
        "Demo Object Storage (S3-compatible)",
        "0.0210",
        PriceUnit.GB_MONTH,
        ("FR", "DC", "SG"),
        "S3-compatible buckets for training data and checkpoints, reached privately over the fabric.",
        {"storage_type": "object", "egress_price_per_gb": 0, "max_throughput_gbps": 40, "durability": "11 nines"},
    ),
    (
        Category.DATA_PLATFORM,
        "Demo Lakehouse for AI Training Data",
        "0.0350",
        PriceUnit.GB_MONTH,
        ("FR", "AM"),
        "Managed Iceberg tables next to the GPU clusters, with private ingest from your data centre.",
        {"storage_type": "lakehouse", "egress_price_per_gb": 0.01, "max_throughput_gbps": 100},
    ),
    (
        Category.DATA_PLATFORM,
        "Demo Vector Database",
        "0.2500",
        PriceUnit.GB_MONTH,
        ("FR", "DC"),
        "Managed vector search for retrieval-augmented generation, without public endpoints.",
        {"storage_type": "vector", "max_throughput_gbps": 10, "durability": "3 replicas"},
    ),
    (
        Category.NETWORK_SERVICE,
        "Demo Cloud Router",
        "450.0000",
        PriceUnit.MONTH,
        ("FR", "DC", "SG", "AM"),
        "Layer 3 routing between your fabric connections and clouds, with BGP sessions managed for you.",
        {"service_type": "cloud-router", "max_bandwidth_mbps": 10_000, "sla_availability_pct": 99.99},
    ),
    (
        Category.NETWORK_SERVICE,
        "Demo Internet Exchange Access",
        "120.0000",
        PriceUnit.GBPS_MONTH,
        ("FR", "AM"),
        "Peering with hundreds of networks on a shared exchange LAN, reached over a fabric connection.",
        {"service_type": "internet-exchange", "max_bandwidth_mbps": 100_000, "sla_availability_pct": 99.95},
    ),
    (
        Category.NETWORK_SERVICE,
        "Demo IP Transit",
        "180.0000",
        PriceUnit.GBPS_MONTH,
        ("DC", "SG"),
        "Full-table IP transit with DDoS-aware routing, billed per committed Gbps.",
        {"service_type": "transit", "max_bandwidth_mbps": 100_000, "sla_availability_pct": 99.99},
    ),
    (
        Category.SECURITY_SERVICE,
        "Demo DDoS Protection (always-on)",
        "2500.0000",
        PriceUnit.MONTH,
        ("FR", "DC"),
        "Always-on volumetric and protocol DDoS scrubbing in front of your public-facing AI endpoints.",
        {"service_type": "ddos-protection", "inspection_gbps": 100, "sla_availability_pct": 99.99},
    ),
    (
        Category.SECURITY_SERVICE,
        "Demo AI Gateway",
        "4.0000",
        PriceUnit.REQUEST_MILLION,
        ("FR", "DC", "SG"),
        "Inspects model traffic for prompt injection and data leaks, with per-team rate limits and logs.",
        {"service_type": "ai-gateway", "inspection_gbps": 10, "sla_availability_pct": 99.9},
    ),
]


@dataclass
class OfferingSpec:
    provider: DemoProvider
    category: str
    name: str
    slug: str
    price: Decimal
    unit: str
    attributes: dict
    metros: tuple[str, ...]
    summary: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)


def _read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float | int | None:
    if not text:
        return None
    value = float(text)
    return int(value) if value.is_integer() else value


def _usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _median(values: list[Decimal]) -> Decimal:
    return Decimal(statistics.median(values))


def _gcp_outliers(prices: dict[str, Decimal]) -> set[str]:
    """Regions whose price is under 60% of the median of the type's other regions."""
    outliers = set()
    for region, price in prices.items():
        others = [p for r, p in prices.items() if r != region]
        if others and price < GCP_OUTLIER_RATIO * _median(others):
            outliers.add(region)
    return outliers


def gpu_specs(rows: list[dict] | None = None) -> list[OfferingSpec]:
    """One spec per (provider, instance type): the median price over its regions, reachable at its mapped metros."""
    by_type: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in _read(GPU_CSV) if rows is None else rows:
        by_type[(row["provider"], row["instance_type"])].append(row)
    specs = []
    for (provider_key, instance_type), regions in by_type.items():
        provider = GPU_CLOUDS[provider_key]
        first = regions[0]
        prices = {row["region"]: Decimal(row["price_per_hour_usd"]) for row in regions}
        excluded = _gcp_outliers(prices) if provider_key == "GCP" else set()
        counted = [price for region, price in prices.items() if region not in excluded]
        spots = [Decimal(row["spot_price_per_hour_usd"]) for row in regions if row["spot_price_per_hour_usd"]]
        accelerator, count = first["accelerator"], int(first["accelerator_count"])
        memory = _number(first["gpu_memory_gb"])
        attributes = {
            "accelerator": accelerator,
            "gpu_count": count,
            "gpu_memory_gb": memory,
            "vcpus": _number(first["vcpus"]),
            "ram_gb": _number(first["memory_gb"]),
            "spot_price_per_hour": float(round(_median(spots), 4)) if spots else None,
            "region": ", ".join(prices),
        }
        metros = tuple(dict.fromkeys(row["metro_code"] for row in regions if row["metro_code"]))
        summary = f"{count}x {accelerator} ({memory:g} GB each)"
        if first["vcpus"]:
            summary += f", {_number(first['vcpus']):g} vCPUs, {_number(first['memory_gb']):g} GB RAM"
        description = (
            f"{provider.name} instance type {instance_type}. The price is the median on-demand list price "
            f"over {len(counted)} of its {len(prices)} regions ({_usd(min(counted))} to {_usd(max(counted))} per hour), "
            f"from the providers' public pricing as recorded in the SkyPilot catalog (retrieved {DATA_DATE})."
        )
        tags = ["demo-data", accelerator]
        if excluded:
            names = ", ".join(sorted(excluded))
            low = sorted(prices[region] for region in excluded)
            description += (
                f" Price unverified: in {names} the catalog lists {_usd(low[0])} to {_usd(low[-1])} per hour, "
                "about half the price elsewhere (probably an artefact of the catalog), so those regions are "
                "left out of the median."
            )
            tags.append(PRICE_UNVERIFIED)
        description += f" Demo listing built from public data; not operated by {provider.name}."
        specs.append(
            OfferingSpec(
                provider=provider,
                category=Category.GPU_CLOUD,
                name=f"{count}x {accelerator} · {instance_type}",
                slug=slugify(instance_type.replace(".", "-")),
                price=_median(counted),
                unit=PriceUnit.HOUR,
                attributes={key: value for key, value in attributes.items() if value is not None},
                metros=metros,
                summary=summary,
                description=description,
                tags=tags,
            )
        )
    return specs


def model_specs() -> list[OfferingSpec]:
    """One spec per model row, priced per million input tokens, at the vendor's demo metros."""
    specs = []
    for row in _read(MODEL_CSV):
        provider = MODEL_VENDORS[row["vendor"]]
        input_price = Decimal(row["input_price_per_mtok_usd"])
        output = row["output_price_per_mtok_usd"]
        context = int(row["context_window"])
        summary = f"{row['modality']}, {context:,}-token context; {input_price:f} USD per million input tokens"
        summary += f", {Decimal(output):f} USD per million output tokens." if output else "."
        specs.append(
            OfferingSpec(
                provider=provider,
                category=Category.MODEL_VENDOR,
                name=row["model"],
                slug=slugify(row["model"]),
                price=input_price,
                unit=PriceUnit.MTOK_INPUT,
                attributes={
                    "context_window": context,
                    "input_price_per_mtok": float(input_price),
                    "output_price_per_mtok": float(output) if output else None,
                    "modality": row["modality"],
                },
                metros=provider.metros,
                summary=summary,
                description=(
                    f"{row['vendor']}'s {row['model']} through its first-party API, at the list price recorded "
                    f"in LiteLLM's price table (retrieved {DATA_DATE}); cached, batch and tiered prices are not "
                    f"shown. Demo listing built from public data; not operated by {row['vendor']}, and the metros "
                    "where it is reachable are a demo assumption."
                ),
                tags=["demo-data", *row["modality"].split("+")],
            )
        )
    for spec in specs:
        spec.attributes = {key: value for key, value in spec.attributes.items() if value is not None}
    return specs


def hand_written_specs() -> list[OfferingSpec]:
    return [
        OfferingSpec(
            provider=DEMO_PROVIDER,
            category=category,
            name=name,
            slug=slugify(name),
            price=Decimal(price),
            unit=unit,
            attributes=attributes,
            metros=metros,
            summary=summary,
            description=f"{summary} Hand-written demo listing with a made-up price.",
            tags=["demo-data"],
        )
        for category, name, price, unit, metros, summary, attributes in HAND_WRITTEN
    ]


def _provider_admin(provider: DemoProvider, password_hash: Callable[[], str], *, reset_password: bool) -> Membership:
    """The provider's organization and its ADMIN member, created if missing; an existing admin's password is
    reset to the demo password only when that is cheap (``reset_password``)."""
    org, _ = Organization.objects.get_or_create(
        slug=provider.slug, defaults={"name": provider.name, "kind": OrganizationKind.PROVIDER}
    )
    email = f"admin@{provider.slug}.example"
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User(email=email, full_name=f"{provider.name} Admin")
        user.password = password_hash()
        user.save()
    elif reset_password:
        user.password = password_hash()
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(user=user, organization=org, defaults={"role": Role.ADMIN})
    membership.organization = org
    return membership


def _profile(membership: Membership, provider: DemoProvider) -> tuple[ProviderProfile, bool]:
    profile = ProviderProfile.objects.filter(organization=membership.organization).first()
    if profile is not None:
        return profile, False
    if provider is DEMO_PROVIDER:
        description = "The demo's own provider: GPU capacity plus data, network and security services."
    else:
        description = (
            f"Demo profile of {provider.name}, with listings built from public list prices. "
            f"Not operated or endorsed by {provider.name}."
        )
    profile = services.provider_profile_upsert(
        membership=membership,
        name=provider.name,
        slug=provider.slug,
        description=description,
        website=provider.website,
        certifications=list(provider.certifications),
        hq_country=provider.hq_country,
    )
    return profile, True


@transaction.atomic
def seed_marketplace_demo(*, password_hash: str = "") -> dict:
    """Create the missing demo providers, ports, offerings and access points, and publish what is reachable.

    New provider admins get the demo password. ``seed_demo`` passes the hash it already made, which saves
    a second PBKDF2 run and, like ``seed_demo`` does for its own people, resets existing admins' passwords. Returns how many of each were created (or published) by this run.
    """
    from hub.management.commands.seed_demo import DEMO_PASSWORD  # here: seed_demo imports this module

    specs = [*gpu_specs(), *model_specs(), *hand_written_specs()]
    providers = list({spec.provider.slug: spec.provider for spec in specs}.values())
    counts = dict.fromkeys(("providers", "ports", "offerings", "access_points", "published"), 0)

    @functools.cache
    def demo_password_hash() -> str:  # hashed at most once per run (PBKDF2 takes about a second)
        return password_hash or make_password(DEMO_PASSWORD)

    members: dict[str, Membership] = {}
    profiles: dict[str, ProviderProfile] = {}
    for provider in providers:
        members[provider.slug] = _provider_admin(provider, demo_password_hash, reset_password=bool(password_hash))
        profiles[provider.slug], created = _profile(members[provider.slug], provider)
        counts["providers"] += created

    # Ports: one active 100 Gbps port per provider and metro; an existing active port in the metro will do.
    metros = {metro.code: metro for metro in Metro.objects.all()}
    org_ids = {member.organization_id: slug for slug, member in members.items()}
    ports: dict[tuple[str, str], Port] = {}
    for port in (
        Port.objects.select_related("metro")
        .filter(organization_id__in=org_ids, state=PortState.ACTIVE)
        .order_by("-speed_mbps", "name")
    ):
        ports.setdefault((org_ids[port.organization_id], port.metro.code), port)
    new_ports = []
    for spec in specs:
        for code in spec.metros:
            key = (spec.provider.slug, code)
            if key not in ports:
                ports[key] = Port(
                    organization=members[spec.provider.slug].organization,
                    metro=metros[code],
                    name=f"{spec.provider.slug}-{code.lower()}-1",
                    speed_mbps=PORT_SPEED,
                    capacity_mbps=PORT_SPEED,
                    state=PortState.ACTIVE,
                )
                new_ports.append(ports[key])
    Port.objects.bulk_create(new_ports)
    counts["ports"] = len(new_ports)

    existing = {
        (offering.provider_id, offering.slug): offering
        for offering in Offering.objects.filter(provider__in=profiles.values())
    }
    access_points = set(
        AccessPoint.objects.filter(offering__provider__in=profiles.values()).values_list("offering_id", "port_id")
    )
    for spec in specs:
        membership, profile = members[spec.provider.slug], profiles[spec.provider.slug]
        offering = existing.get((profile.pk, spec.slug))
        if offering is None:
            offering = services.offering_create(
                membership=membership,
                category=spec.category,
                name=spec.name,
                slug=spec.slug,
                price_amount=spec.price,
                price_unit=spec.unit,
                attributes=spec.attributes,
                summary=spec.summary,
                description=spec.description,
                tags=spec.tags,
            )
            existing[(profile.pk, spec.slug)] = offering
            counts["offerings"] += 1
        reachable = False
        for code in spec.metros:
            port = ports[(spec.provider.slug, code)]
            reachable = True
            if (offering.pk, port.pk) in access_points:
                continue
            services.access_point_create(
                membership=membership,
                offering=offering,
                port=port,
                allowed_bandwidths_mbps=[b for b in BANDWIDTHS_MBPS if b <= port.speed_mbps],
                approval_mode=spec.provider.approval,
            )
            access_points.add((offering.pk, port.pk))
            counts["access_points"] += 1
        if reachable and offering.status == OfferingStatus.DRAFT:
            offering = services.offering_publish(membership=membership, offering=offering)
            counts["published"] += 1
    return counts
