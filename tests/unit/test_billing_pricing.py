"""billing's pure rules: tariffs as agents send them, unit prices by quotient familial (band
boundaries, unknown quotient), exact sums in cents, quotes, credit used first, refundable amounts."""

import pytest

from services.billing import pricing
from services.billing.pricing import TariffRule, parse_tariff, unit_price
from services.common.errors import ValidationFailed

BANDS = {
    "bands": [
        {"qf_max": 500, "unit_price_cents": 150},
        {"qf_max": 1000, "unit_price_cents": 300},
        {"qf_max": None, "unit_price_cents": 450},
    ]
}


def fields_of(data):
    with pytest.raises(ValidationFailed) as refused:
        parse_tariff(data)
    return set(refused.value.details["fields"])


@pytest.mark.parametrize(
    ("quotient", "price"),
    [(0, 150), (499, 150), (500, 150), (501, 300), (1000, 300), (1001, 450), (10_000, 450), (None, 450)],
)
def test_the_first_band_whose_ceiling_holds_the_quotient_applies(quotient, price):
    assert unit_price(parse_tariff(BANDS), quotient) == price


def test_flat_price_whatever_the_quotient_and_no_tariff_is_free():
    flat = parse_tariff({"unit_price_cents": 415})
    assert [unit_price(flat, q) for q in (None, 0, 5000)] == [415, 415, 415]
    assert unit_price(None, 300) == 0


def test_sums_are_exact_integer_cents():
    flat = parse_tariff({"unit_price_cents": 415})
    lines = [pricing.quote_line(i, "c1", "book", flat, None) for i in range(17)]
    assert pricing.quote(lines)["total_cents"] == 7055
    assert pricing.total([10, 20, 30]) == 60 and isinstance(pricing.total([1]), int)


def test_quote_prices_bookings_not_cancellations_and_totals_per_commune():
    bands = parse_tariff(BANDS)
    lines = [
        pricing.quote_line("a", "c1", "book", bands, 500),
        pricing.quote_line("b", "c1", "cancel", bands, 500),
        pricing.quote_line("c", "c2", "book", bands, None),
        pricing.quote_line("d", "c2", "book", None, 300),  # no tariff
        pricing.quote_line("e", None, "book", bands, 1),  # a child the caller may not act for
    ]
    quote = pricing.quote(lines)
    assert [(i["id"], i["unit_price_cents"], i["amount_cents"]) for i in quote["items"]] == [
        ("a", 150, 150),
        ("b", 0, 0),
        ("c", 450, 450),
        ("d", 0, 0),
        ("e", 0, 0),
    ]
    assert quote["total_cents"] == 600
    assert quote["communes"] == [
        {"commune_id": "c1", "total_cents": 150},
        {"commune_id": "c2", "total_cents": 450},
    ]


def test_a_tariff_is_flat_or_banded_and_its_fields_are_checked():
    assert parse_tariff({"unit_price_cents": 0}).cancellation_refund == "refund"
    assert parse_tariff({**BANDS, "cancellation_refund": "credit"}).as_fields()["bands"] == BANDS["bands"]
    assert "tariff" in fields_of({})
    assert "tariff" in fields_of({"unit_price_cents": 100, **BANDS})
    assert "unit_price_cents" in fields_of({"unit_price_cents": -1})
    assert "unit_price_cents" in fields_of({"unit_price_cents": 1_000_001})
    assert "unit_price_cents" in fields_of({"unit_price_cents": 4.15})
    assert "unit_price_cents" in fields_of({"unit_price_cents": True})
    assert "cancellation_refund" in fields_of({"unit_price_cents": 1, "cancellation_refund": "cash"})
    assert "colour" in fields_of({"unit_price_cents": 1, "colour": "blue"})
    assert fields_of("cheap") == {"tariff"}


@pytest.mark.parametrize(
    "bands",
    [
        [],
        [{"qf_max": 500, "unit_price_cents": 1}],  # the last band must have no ceiling
        [{"qf_max": None, "unit_price_cents": 1}, {"qf_max": None, "unit_price_cents": 2}],
        [
            {"qf_max": 500, "unit_price_cents": 1},
            {"qf_max": 500, "unit_price_cents": 2},
            {"qf_max": None, "unit_price_cents": 3},
        ],
        [
            {"qf_max": 700, "unit_price_cents": 1},
            {"qf_max": 500, "unit_price_cents": 2},
            {"qf_max": None, "unit_price_cents": 3},
        ],
        [{"qf_max": "500", "unit_price_cents": 1}, {"qf_max": None, "unit_price_cents": 3}],
        [{"qf_max": 500}, {"qf_max": None, "unit_price_cents": 3}],
        [{"qf_max": None, "unit_price_cents": 3}] * 21,
        "500:150",
    ],
)
def test_bad_bands_are_refused_naming_the_field(bands):
    assert any(name.startswith("bands") for name in fields_of({"bands": bands}))


def test_band_prices_are_checked_too():
    bad = {"bands": [{"qf_max": 500, "unit_price_cents": -5}, {"qf_max": None, "unit_price_cents": 3}]}
    assert "bands.unit_price_cents" in fields_of(bad)


def test_one_band_only_is_a_flat_price():
    rule = parse_tariff({"bands": [{"qf_max": None, "unit_price_cents": 320}]})
    assert unit_price(rule, 12) == unit_price(rule, None) == 320


def test_credit_is_used_first_and_never_below_zero():
    assert pricing.credit_split(1000, 300) == (700, 300)
    assert pricing.credit_split(1000, 0) == (1000, 0)
    assert pricing.credit_split(1000, 2500) == (0, 1000)
    assert pricing.credit_split(1000, -50) == (1000, 0)
    assert pricing.credit_split(0, 100) == (0, 0)


def test_refundable_never_exceeds_what_is_left_of_the_money_paid():
    assert pricing.refundable(415, 1000, 0) == 415
    assert pricing.refundable(415, 1000, 800) == 200
    assert pricing.refundable(415, 1000, 1000) == 0
    assert pricing.refundable(415, 0, 0) == 0  # paid with credit only: the day goes back as credit


def test_rule_round_trip():
    rule = TariffRule(unit_price_cents=None, bands=((500, 150), (None, 450)), cancellation_refund="none")
    assert parse_tariff(rule.as_fields()) == rule
