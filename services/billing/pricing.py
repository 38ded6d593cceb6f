"""Prices, pure (no database, no broker): a tariff's rules, the unit price of a day for a family's
quotient familial, and quotes. Money is integer cents, always.

A tariff is flat (`unit_price_cents`) or by bands of quotient familial (`bands`: the first band whose
`qf_max` >= the quotient applies; the last band has `qf_max` None and catches everything above, and
also a family whose quotient is unknown: without a quotient, the highest price)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.errors import ValidationFailed

MAX_PRICE_CENTS = 1_000_000
MAX_BANDS = 20
MAX_QUOTIENT = 1_000_000
RULES = ("refund", "credit", "none")
DEFAULT_RULE = "refund"
BASES = ("booked", "attended")  # what a postpaid day counts as on the month's invoice
DEFAULT_BASIS = "booked"

MESSAGES = {
    "tariff": "Indiquez soit un prix unique (unit_price_cents), soit des tranches (bands).",
    "unit_price_cents": f"Le prix est un nombre entier de centimes entre 0 et {MAX_PRICE_CENTS}.",
    "bands": f"Les tranches sont une liste de 1 à {MAX_BANDS} éléments {{qf_max, unit_price_cents}}.",
    "qf_max": (
        "Les plafonds de quotient (qf_max) sont des entiers strictement croissants ; "
        "seule la dernière tranche n'a pas de plafond (null)."
    ),
    "band_price": f"Chaque tranche a un prix entier en centimes entre 0 et {MAX_PRICE_CENTS}.",
    "cancellation_refund": "La règle d'annulation est refund, credit ou none.",
    "invoice_basis": "La base de facturation est booked (jours réservés) ou attended (jours de présence).",
    "unknown": "Champ inconnu.",
}


@dataclass(frozen=True)
class TariffRule:
    unit_price_cents: int | None
    bands: tuple[tuple[int | None, int], ...] | None  # (qf_max, unit_price_cents)
    cancellation_refund: str = DEFAULT_RULE
    invoice_basis: str = DEFAULT_BASIS

    def as_fields(self) -> dict[str, Any]:
        return {
            "unit_price_cents": self.unit_price_cents,
            "bands": None
            if self.bands is None
            else [{"qf_max": qf_max, "unit_price_cents": price} for qf_max, price in self.bands],
            "cancellation_refund": self.cancellation_refund,
            "invoice_basis": self.invoice_basis,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _price_ok(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_PRICE_CENTS


def parse_tariff(data: Any) -> TariffRule:
    """A tariff as an agent sends it, checked; ValidationFailed names every wrong field."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(details={"fields": {"tariff": [MESSAGES["tariff"]]}})
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in ("unit_price_cents", "bands", "cancellation_refund", "invoice_basis"):
            errors[str(key)[:50]] = [MESSAGES["unknown"]]
    flat, bands = data.get("unit_price_cents"), data.get("bands")
    if (flat is None) == (bands is None):
        errors["tariff"] = [MESSAGES["tariff"]]
    if flat is not None and not _price_ok(flat):
        errors["unit_price_cents"] = [MESSAGES["unit_price_cents"]]
    parsed_bands = None
    if bands is not None:
        parsed_bands = _parse_bands(bands, errors)
    rule = data.get("cancellation_refund", DEFAULT_RULE)
    if rule not in RULES:
        errors["cancellation_refund"] = [MESSAGES["cancellation_refund"]]
    basis = data.get("invoice_basis", DEFAULT_BASIS)
    if basis not in BASES:
        errors["invoice_basis"] = [MESSAGES["invoice_basis"]]
    if errors:
        raise ValidationFailed(details={"fields": errors})
    return TariffRule(
        unit_price_cents=flat, bands=parsed_bands, cancellation_refund=rule, invoice_basis=basis
    )


def _parse_bands(bands: Any, errors: dict[str, list[str]]) -> tuple[tuple[int | None, int], ...] | None:
    if not isinstance(bands, list) or not 1 <= len(bands) <= MAX_BANDS:
        errors["bands"] = [MESSAGES["bands"]]
        return None
    parsed: list[tuple[int | None, int]] = []
    previous: int | None = None
    for index, band in enumerate(bands):
        if not isinstance(band, Mapping) or set(band) != {"qf_max", "unit_price_cents"}:
            errors["bands"] = [MESSAGES["bands"]]
            return None
        qf_max, price = band["qf_max"], band["unit_price_cents"]
        last = index == len(bands) - 1
        if last:
            if qf_max is not None:
                errors["bands.qf_max"] = [MESSAGES["qf_max"]]
        elif (
            not _is_int(qf_max)
            or not 0 <= qf_max <= MAX_QUOTIENT
            or (previous is not None and qf_max <= previous)
        ):
            errors["bands.qf_max"] = [MESSAGES["qf_max"]]
        else:
            previous = qf_max
        if not _price_ok(price):
            errors["bands.unit_price_cents"] = [MESSAGES["band_price"]]
        parsed.append((qf_max, price))
    return tuple(parsed)


def unit_price(rule: TariffRule | None, quotient: int | None) -> int:
    """The price of one day for a family of this quotient (None: unknown, the highest band).
    No tariff: 0 (the activity is free, or not priced yet)."""
    if rule is None:
        return 0
    if rule.bands is None:
        return int(rule.unit_price_cents or 0)
    if quotient is None:
        return rule.bands[-1][1]
    for qf_max, price in rule.bands:
        if qf_max is None or quotient <= qf_max:
            return price
    return rule.bands[-1][1]


@dataclass(frozen=True)
class QuoteLine:
    id: Any  # the cart item's id (or the booking's)
    commune_id: str | None
    unit_price_cents: int
    amount_cents: int


def quote_line(
    item_id: Any, commune_id: str | None, action: str, rule: TariffRule | None, quotient: int | None
) -> QuoteLine:
    """One cart item: a day to book costs its unit price; a cancellation costs nothing here (what it
    gives back is decided when it is accepted)."""
    if action != "book" or commune_id is None:
        return QuoteLine(item_id, commune_id, 0, 0)
    price = unit_price(rule, quotient)
    return QuoteLine(item_id, commune_id, price, price)


def total(amounts: Iterable[int]) -> int:
    return sum(int(amount) for amount in amounts)


def quote(lines: list[QuoteLine]) -> dict[str, Any]:
    """The RPC shape of a quote: each item's price, the total, and the total per commune (each
    commune is paid separately)."""
    per_commune: dict[str, int] = {}
    for line in lines:
        if line.commune_id is not None:
            per_commune[line.commune_id] = per_commune.get(line.commune_id, 0) + line.amount_cents
    return {
        "items": [
            {"id": line.id, "unit_price_cents": line.unit_price_cents, "amount_cents": line.amount_cents}
            for line in lines
        ],
        "total_cents": total(line.amount_cents for line in lines),
        "communes": [{"commune_id": cid, "total_cents": cents} for cid, cents in sorted(per_commune.items())],
    }


def credit_split(total_cents: int, available_credit_cents: int) -> tuple[int, int]:
    """(amount to pay, credit used): the family's credit is used first, never below zero."""
    credit = max(0, min(available_credit_cents, total_cents))
    return total_cents - credit, credit


def refundable(price_cents: int, paid_cents: int, refunded_cents: int) -> int:
    """How much of a day's price can go back to the card: never more than what is left of the
    money paid (a payment partly made with credit gives the rest back as credit)."""
    return max(0, min(price_cents, paid_cents - refunded_cents))
