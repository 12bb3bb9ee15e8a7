"""Quotes: monthly recurring and one-off charges, in Decimal money.

A connection's monthly price is the bandwidth tier (the smallest tier at least as large as the
bandwidth) priced for its distance band: same metro, same region, or inter-region. A port's monthly
fee depends on its speed. Higher apps add their own lines (an offering's price) to a quote.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

CURRENCY = "USD"


class DistanceBand(StrEnum):
    METRO = "same_metro"
    REGION = "same_region"
    INTER_REGION = "inter_region"


BAND_LABELS = {
    DistanceBand.METRO: "same metro",
    DistanceBand.REGION: "same region",
    DistanceBand.INTER_REGION: "inter-region",
}

# Monthly list price of a bandwidth tier within one metro; other bands apply a multiplier.
BANDWIDTH_TIERS_MBPS: dict[int, Decimal] = {
    50: Decimal("60"),
    100: Decimal("100"),
    200: Decimal("160"),
    500: Decimal("300"),
    1_000: Decimal("500"),
    2_000: Decimal("800"),
    5_000: Decimal("1500"),
    10_000: Decimal("2500"),
    25_000: Decimal("5000"),
    50_000: Decimal("8000"),
    100_000: Decimal("13000"),
    200_000: Decimal("22000"),
    400_000: Decimal("40000"),
}
BAND_MULTIPLIER = {
    DistanceBand.METRO: Decimal("1.0"),
    DistanceBand.REGION: Decimal("1.6"),
    DistanceBand.INTER_REGION: Decimal("3.2"),
}
PORT_MONTHLY_FEE = {1_000: Decimal("300"), 10_000: Decimal("900"), 100_000: Decimal("3500"), 400_000: Decimal("9000")}
PORT_SETUP_FEE = Decimal("500")
CONNECTION_SETUP_FEE = Decimal("100")
MAX_BANDWIDTH_MBPS = max(BANDWIDTH_TIERS_MBPS)


@dataclass(frozen=True)
class QuoteLine:
    description: str
    monthly: Decimal = Decimal("0")
    one_off: Decimal = Decimal("0")

    def as_dict(self) -> dict:
        return {"description": self.description, "monthly": f"{self.monthly:.2f}", "one_off": f"{self.one_off:.2f}"}


@dataclass
class Quote:
    lines: list[QuoteLine] = field(default_factory=list)
    currency: str = CURRENCY

    @property
    def monthly_total(self) -> Decimal:
        return sum((line.monthly for line in self.lines), Decimal("0"))

    @property
    def one_off_total(self) -> Decimal:
        return sum((line.one_off for line in self.lines), Decimal("0"))

    def as_dict(self) -> dict:
        return {
            "currency": self.currency,
            "monthly_total": f"{self.monthly_total:.2f}",
            "one_off_total": f"{self.one_off_total:.2f}",
            "lines": [line.as_dict() for line in self.lines],
        }


def distance_band(a_metro, z_metro) -> DistanceBand:
    if a_metro.pk == z_metro.pk:
        return DistanceBand.METRO
    if a_metro.region == z_metro.region:
        return DistanceBand.REGION
    return DistanceBand.INTER_REGION


def bandwidth_tier(bandwidth_mbps: int) -> int:
    for tier in BANDWIDTH_TIERS_MBPS:
        if bandwidth_mbps <= tier:
            return tier
    raise ValueError(f"Bandwidth above the largest tier ({MAX_BANDWIDTH_MBPS:,} Mbps).")


def connection_quote(*, a_metro, z_metro, bandwidth_mbps: int) -> Quote:
    band = distance_band(a_metro, z_metro)
    tier = bandwidth_tier(bandwidth_mbps)
    monthly = (BANDWIDTH_TIERS_MBPS[tier] * BAND_MULTIPLIER[band]).quantize(Decimal("0.01"))
    return Quote(
        lines=[
            QuoteLine(
                description=f"{_mbps(tier)} tier, {BAND_LABELS[band]} ({a_metro.code} to {z_metro.code})",
                monthly=monthly,
            ),
            QuoteLine(description="Connection setup", one_off=CONNECTION_SETUP_FEE),
        ]
    )


def port_quote(*, speed_mbps: int) -> Quote:
    return Quote(
        lines=[
            QuoteLine(
                description=f"{_mbps(speed_mbps)} port", monthly=PORT_MONTHLY_FEE[speed_mbps], one_off=PORT_SETUP_FEE
            )
        ]
    )


def _mbps(value: int) -> str:
    return f"{value // 1000} Gbps" if value >= 1000 and value % 1000 == 0 else f"{value} Mbps"
