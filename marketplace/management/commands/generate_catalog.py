"""Generate a large, realistic catalog for benchmarks (not for demos: the providers are made up).

    python manage.py generate_catalog --offerings 100000 [--seed 1] [--providers N] [--replace]

What it writes, and from which distributions:

* Providers (``gen-<seed>-<n>``): a provider organization, a profile with certifications, and one active
  100 Gbps port in each of its 3 to 12 metros. Provider sizes follow a Zipf-like law (a few large
  catalogues, many small ones); each has a main category holding about 80% of its listings.
* Offerings: categories GPU cloud 45%, model vendor 25%, data platform 12%, network service 10%, security
  service 8%. GPU listings are drawn from the real rows of ``marketplace/data/gpu_offerings.csv``
  (accelerator, GPU memory, price per GPU-hour), with 1/2/4/8 GPUs and the price varied by up to 25%;
  model listings from ``model_offerings.csv`` (context window, input and output prices). Attributes are
  validated with each category's schema. 92% are published, 5% drafts, 3% retired.
* Access points: 1 to 4 of the provider's metros per offering, real metros from ``fabric/data/metros.csv``
  weighted towards the large interconnection markets.

The same ``--seed`` gives the same catalog. Rows are written with ``bulk_create`` in batches; the search
vectors (PostgreSQL) are computed afterwards in one UPDATE per batch.
"""

import csv
import itertools
import random
import time
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from fabric.choices import PortSpeed, PortState
from fabric.models import Metro, Port
from fabric.services import metros_load
from hub.choices import OrganizationKind
from hub.models import Organization
from marketplace.attributes import validate_attributes
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit
from marketplace.demo import GPU_CSV, MODEL_CSV
from marketplace.models import AccessPoint, Offering, ProviderProfile, regions_text
from marketplace.search import refresh_search_documents

CATEGORY_WEIGHTS = {
    Category.GPU_CLOUD: 45,
    Category.MODEL_VENDOR: 25,
    Category.DATA_PLATFORM: 12,
    Category.NETWORK_SERVICE: 10,
    Category.SECURITY_SERVICE: 8,
}
STATUS_WEIGHTS = {OfferingStatus.PUBLISHED: 92, OfferingStatus.DRAFT: 5, OfferingStatus.RETIRED: 3}
# Large interconnection markets get more providers and access points.
BIG_METROS = {"DC": 8, "NY": 5, "SV": 6, "CH": 4, "DA": 4, "LA": 4, "FR": 8, "AM": 7, "LD": 8, "PA": 5, "SG": 7}
BIG_METROS |= {"TY": 6, "HK": 5, "SY": 4, "SE": 3, "MB": 3, "SP": 3, "TR": 2, "ZH": 2, "ML": 2, "MD": 2}
CERTIFICATIONS = ["SOC 2", "ISO 27001", "GDPR", "HIPAA", "PCI DSS", "C5", "FedRAMP Moderate", "ISO 27701"]
NAME_WORDS = [
    "Nimbus",
    "Helios",
    "Vertex",
    "Quanta",
    "Aurora",
    "Boreal",
    "Cobalt",
    "Zenith",
    "Orbit",
    "Stratus",
    "Photon",
    "Ion",
    "Tensor",
    "Lattice",
    "Vector",
    "Nova",
    "Apex",
    "Summit",
    "Crest",
    "Delta",
    "Sigma",
    "Kappa",
    "Polar",
    "Ember",
    "Granite",
    "Cirrus",
    "Atlas",
    "Titan",
    "Echo",
    "Pulse",
]
NAME_SUFFIXES = ["Compute", "Cloud", "AI", "Labs", "Networks", "Data", "Systems", "Secure", "GPU", "Fabric"]
STORAGE = ["object", "lakehouse", "vector", "warehouse", "block", "feature-store"]
NETWORK_SERVICES = ["cloud-router", "internet-exchange", "transit", "sd-wan", "vpn-gateway"]
SECURITY_SERVICES = ["ddos-protection", "firewall", "ai-gateway", "waf", "secure-web-gateway", "dlp"]
BANDWIDTHS = [1_000, 10_000, 100_000]


class Command(BaseCommand):
    help = (
        "Generate a large, realistic catalog for benchmarks: --offerings N offerings (default 1000) from "
        "N/250 providers (at least 10) with access points at real metros; GPU and model listings drawn from "
        "the real price lists in marketplace/data/. Deterministic for a given --seed (default 1). "
        "Refuses to run if the seed's providers exist, unless --replace deletes them first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--offerings", type=int, default=1000, help="How many offerings (default 1000).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed: the same seed, the same catalog.")
        parser.add_argument("--providers", type=int, default=None, help="How many providers (default N/250).")
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows per INSERT (default 5000).")
        parser.add_argument("--replace", action="store_true", help="Delete this seed's generated catalog first.")

    def handle(self, *args, offerings, seed, providers, batch_size, replace, **options):
        if offerings < 1 or offerings > 5_000_000:
            raise CommandError("--offerings must be between 1 and 5,000,000.")
        providers = providers or max(10, offerings // 250)
        if providers < 1:
            raise CommandError("--providers must be at least 1.")
        started = time.monotonic()
        prefix = f"gen-{seed}-"
        existing = Organization.objects.filter(slug__startswith=prefix, kind=OrganizationKind.PROVIDER)
        if existing.exists():
            if not replace:
                raise CommandError(f"A catalog with seed {seed} exists ({prefix}*); use --replace or another --seed.")
            self._delete(prefix)
        if not Metro.objects.exists():
            metros_load()
        generator = CatalogGenerator(random.Random(seed), prefix)  # noqa: S311 (repeatable data, not secrets)
        with transaction.atomic():
            counts = generator.write(offerings=offerings, providers=providers, batch_size=batch_size)
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {counts['offerings']:,} offerings ({counts['published']:,} published), "
                f"{counts['access_points']:,} access points, {counts['providers']:,} providers and "
                f"{counts['ports']:,} ports in {time.monotonic() - started:.1f} s (seed {seed})."
            )
        )

    def _delete(self, prefix: str) -> None:
        orgs = Organization.objects.filter(slug__startswith=prefix, kind=OrganizationKind.PROVIDER)
        with transaction.atomic():
            AccessPoint.objects.filter(offering__organization__in=orgs).delete()
            Offering.objects.filter(organization__in=orgs).delete()
            ProviderProfile.objects.filter(organization__in=orgs).delete()
            Port.objects.filter(organization__in=orgs).delete()
            orgs.delete()


class CatalogGenerator:
    def __init__(self, rng: random.Random, prefix: str):
        self.rng = rng
        self.prefix = prefix
        with GPU_CSV.open(newline="", encoding="utf-8") as handle:
            self.gpu_rows = [row for row in csv.DictReader(handle) if row["gpu_memory_gb"]]
        with MODEL_CSV.open(newline="", encoding="utf-8") as handle:
            self.model_rows = list(csv.DictReader(handle))
        self.metros = list(Metro.objects.order_by("code"))
        self.metro_weights = [BIG_METROS.get(m.code, 1) for m in self.metros]

    def pick(self, weights: dict):
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def write(self, *, offerings: int, providers: int, batch_size: int) -> dict:
        orgs, profiles, ports = self._providers(providers)
        sizes = [1 / (rank + 1) ** 0.8 for rank in range(providers)]
        self.rng.shuffle(sizes)
        cumulative = list(itertools.accumulate(sizes))
        now = timezone.now()
        counts = dict.fromkeys(("offerings", "published", "access_points"), 0)
        counts |= {"providers": providers, "ports": sum(len(p) for p in ports)}
        done = 0
        while done < offerings:
            rows, reach = [], []
            for i in range(done, min(offerings, done + batch_size)):
                index = self.rng.choices(range(providers), cum_weights=cumulative)[0]
                offering, metro_ports = self._offering(i, orgs[index], profiles[index], ports[index], now)
                rows.append(offering)
                reach.append(metro_ports)
            Offering.objects.bulk_create(rows, batch_size=batch_size)
            access_points = []
            for offering, metro_ports in zip(rows, reach, strict=True):
                for port in metro_ports:
                    access_points.append(
                        AccessPoint(
                            offering=offering,
                            port=port,
                            allowed_bandwidths_mbps=self.rng.choice([BANDWIDTHS[:1], BANDWIDTHS[:2], BANDWIDTHS]),
                            approval_mode=ApprovalMode.AUTOMATIC if self.rng.random() < 0.3 else ApprovalMode.MANUAL,
                        )
                    )
            AccessPoint.objects.bulk_create(access_points, batch_size=batch_size)
            refresh_search_documents(Offering.objects.filter(pk__in=[o.pk for o in rows]))
            counts["offerings"] += len(rows)
            counts["published"] += sum(o.status == OfferingStatus.PUBLISHED for o in rows)
            counts["access_points"] += len(access_points)
            done += len(rows)
        return counts

    def _providers(self, count: int):
        names = set()
        orgs, profiles, ports = [], [], []
        for n in range(count):
            name = f"{self.rng.choice(NAME_WORDS)} {self.rng.choice(NAME_SUFFIXES)}"
            while name in names:
                name = f"{name} {self.rng.randint(2, 99)}"
            names.add(name)
            orgs.append(Organization(name=name, slug=f"{self.prefix}{n}", kind=OrganizationKind.PROVIDER))
        Organization.objects.bulk_create(orgs)
        for n, org in enumerate(orgs):
            main = self.pick(CATEGORY_WEIGHTS)
            certifications = sorted(self.rng.sample(CERTIFICATIONS, self.rng.randint(0, 4)))
            profiles.append(
                ProviderProfile(
                    organization=org,
                    name=org.name,
                    slug=f"{self.prefix}{n}",
                    description=f"Generated benchmark provider, mostly {Category(main).label.lower()}.",
                    certifications=certifications,
                    hq_country=self.rng.choice(["US", "DE", "FR", "GB", "NL", "SG", "JP", "CA", "SE"]),
                    verified=self.rng.random() < 0.6,
                )
            )
            profiles[-1].main_category = main
            metros = set()
            for _ in range(self.rng.randint(3, 12)):
                metros.add(self.rng.choices(self.metros, weights=self.metro_weights)[0])
            ports.append(
                [
                    Port(
                        organization=org,
                        metro=metro,
                        name=f"{org.slug}-{metro.code.lower()}-1",
                        speed_mbps=PortSpeed.G100,
                        capacity_mbps=PortSpeed.G100,
                        state=PortState.ACTIVE,
                    )
                    for metro in sorted(metros, key=lambda m: m.code)
                ]
            )
        ProviderProfile.objects.bulk_create(profiles)
        Port.objects.bulk_create([port for provider_ports in ports for port in provider_ports])
        return orgs, profiles, ports

    def _offering(self, i: int, org, profile, provider_ports, now):
        rng = self.rng
        category = profile.main_category if rng.random() < 0.8 else self.pick(CATEGORY_WEIGHTS)
        name, unit, price, attributes, tags = getattr(self, f"_{category.lower()}")()
        attributes = validate_attributes(category, attributes)
        status = self.pick(STATUS_WEIGHTS)
        metro_ports = rng.sample(provider_ports, min(len(provider_ports), rng.choice([1, 1, 2, 2, 3, 4])))
        compliance = sorted(rng.sample(profile.certifications, rng.randint(0, len(profile.certifications))))
        gpu = category == Category.GPU_CLOUD
        offering = Offering(
            organization=org,
            provider=profile,
            category=category,
            name=name,
            slug=f"{slugify(name)[:100]}-{i}",
            summary=f"{name} from {profile.name}, reachable privately in {len(metro_ports)} metro(s).",
            description=f"Generated listing #{i} for benchmarks; {Category(category).label.lower()} from {profile.name}.",
            status=status,
            price_amount=price,
            price_unit=unit,
            tags=tags,
            compliance=compliance,
            attributes=attributes,
            accelerator=attributes.get("accelerator", "") if gpu else "",
            gpu_count=attributes.get("gpu_count") if gpu else None,
            gpu_memory_gb=attributes.get("gpu_memory_gb") if gpu else None,
            published_at=now if status == OfferingStatus.PUBLISHED else None,
            regions=regions_text({port.metro.region for port in metro_ports}),
        )
        return offering, metro_ports

    def _vary(self, value: float, spread: float = 0.25) -> Decimal:
        return Decimal(str(round(value * self.rng.uniform(1 - spread, 1 + spread), 4)))

    def _gpu_cloud(self):
        row = self.rng.choice(self.gpu_rows)
        count = self.rng.choice([1, 1, 2, 4, 8, 8])
        per_gpu = float(row["price_per_hour_usd"]) / int(row["accelerator_count"])
        attributes = {
            "accelerator": row["accelerator"],
            "gpu_count": count,
            "gpu_memory_gb": float(row["gpu_memory_gb"]),
            "vcpus": count * self.rng.choice([8, 12, 16, 26]),
            "ram_gb": count * self.rng.choice([64, 96, 128, 225]),
        }
        tags = [row["accelerator"], self.rng.choice(["training", "inference", "fine-tuning"])]
        if self.rng.random() < 0.4:
            attributes["spot_price_per_hour"] = float(self._vary(per_gpu * count * 0.4))
            tags.append("spot")
        name = f"{count}x {row['accelerator']} {self.rng.choice(['instance', 'node', 'cluster node', 'bare metal'])}"
        return name, PriceUnit.HOUR, self._vary(per_gpu * count), attributes, tags

    def _model_vendor(self):
        row = self.rng.choice(self.model_rows)
        attributes = {
            "context_window": int(row["context_window"]),
            "input_price_per_mtok": float(row["input_price_per_mtok_usd"]),
            "modality": row["modality"],
        }
        if row["output_price_per_mtok_usd"]:
            attributes["output_price_per_mtok"] = float(row["output_price_per_mtok_usd"])
        price = self._vary(float(row["input_price_per_mtok_usd"]), 0.15)
        attributes["input_price_per_mtok"] = float(price)
        name = f"{row['model']} ({self.rng.choice(['hosted', 'dedicated', 'private endpoint', 'EU hosted'])})"
        return name, PriceUnit.MTOK_INPUT, price, attributes, row["modality"].split("+")

    def _data_platform(self):
        kind = self.rng.choice(STORAGE)
        attributes = {
            "storage_type": kind,
            "egress_price_per_gb": round(self.rng.uniform(0, 0.09), 3),
            "max_throughput_gbps": self.rng.choice([10, 25, 40, 100, 400]),
        }
        name = f"{kind.replace('-', ' ').title()} storage {self.rng.choice(['standard', 'performance', 'archive'])}"
        return name, PriceUnit.GB_MONTH, self._vary(self.rng.uniform(0.004, 0.3), 0.1), attributes, [kind]

    def _network_service(self):
        kind = self.rng.choice(NETWORK_SERVICES)
        attributes = {
            "service_type": kind,
            "max_bandwidth_mbps": self.rng.choice(BANDWIDTHS),
            "sla_availability_pct": self.rng.choice([99.9, 99.95, 99.99]),
        }
        unit = self.rng.choice([PriceUnit.MONTH, PriceUnit.GBPS_MONTH])
        price = self._vary(self.rng.uniform(200, 3000) if unit == PriceUnit.MONTH else self.rng.uniform(60, 400))
        return f"{kind.replace('-', ' ').title()} service", unit, price, attributes, [kind]

    def _security_service(self):
        kind = self.rng.choice(SECURITY_SERVICES)
        attributes = {
            "service_type": kind,
            "inspection_gbps": self.rng.choice([1, 10, 40, 100]),
            "sla_availability_pct": self.rng.choice([99.9, 99.95, 99.99]),
        }
        if kind == "ai-gateway":
            return "AI gateway", PriceUnit.REQUEST_MILLION, self._vary(4.0), attributes, [kind, "ai"]
        return (
            f"{kind.replace('-', ' ').title()}",
            PriceUnit.MONTH,
            self._vary(self.rng.uniform(300, 6000)),
            attributes,
            [kind],
        )
