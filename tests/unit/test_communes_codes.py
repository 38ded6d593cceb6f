"""Adhesion codes: generation, typing forgiveness, keyed-hash storage."""

import hashlib
import hmac
import math
import re

import pytest

from services.communes import codes


def test_alphabet_is_crockford_base32_without_ambiguous_letters():
    assert len(codes.ALPHABET) == 32 == len(set(codes.ALPHABET))
    assert set(codes.ALPHABET) == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert not set("ILOU") & set(codes.ALPHABET)


def test_codes_have_twelve_characters_and_at_least_fifty_bits():
    code = codes.new_code()
    assert len(code) == codes.LENGTH == 12
    assert set(code) <= set(codes.ALPHABET)
    assert codes.ENTROPY_BITS == pytest.approx(60.0)
    assert codes.LENGTH * math.log2(len(codes.ALPHABET)) >= 50


def test_codes_are_unique_and_use_the_whole_alphabet():
    drawn = [codes.new_code() for _ in range(20_000)]
    assert len(set(drawn)) == len(drawn)
    assert set("".join(drawn)) == set(codes.ALPHABET)
    # every position varies (no fixed prefix or checksum that would cut the entropy)
    for position in range(codes.LENGTH):
        assert len({code[position] for code in drawn}) == 32


def test_display_groups_by_four():
    assert codes.display("ABCDEFGHJKMN") == "ABCD-EFGH-JKMN"
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", codes.display(codes.new_code()))


@pytest.mark.parametrize(
    "typed",
    [
        "ABCD-EFGH-JKMN",
        "abcd-efgh-jkmn",
        "ABCDEFGHJKMN",
        " abcd efgh jkmn ",
        "ab cd-ef gh-jk mn",
        "ABCD\u00a0EFGH\tJKMN",
    ],
)
def test_normalization_forgives_case_spaces_and_dashes(typed):
    assert codes.normalize(typed) == "ABCDEFGHJKMN"


def test_normalization_maps_confusable_letters():
    assert codes.normalize("O0O0-IiLl-1uUV") == "000011111VVV"
    assert codes.normalize("oooo-oooo-oooo") == "000000000000"


@pytest.mark.parametrize(
    "typed",
    ["", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "ABCD-EFGH-JK*N", "ÀBCD-EFGH-JKMN", None, 123, "A" * 41],
)
def test_malformed_codes_are_refused(typed):
    assert codes.normalize(typed) is None


def test_digest_is_an_hmac_under_the_key():
    key = b"a server key"
    canonical = "ABCDEFGHJKMN"
    digest = codes.digest(key, canonical)
    assert digest == hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
    assert digest != hashlib.sha256(canonical.encode()).hexdigest()
    assert digest != codes.digest(b"another key", canonical)
    assert canonical not in digest


def test_addresses_are_pseudonymised_in_throttle_keys():
    key = codes.address_key(b"k", "192.0.2.7")
    assert "192.0.2.7" not in key and key == codes.address_key(b"k", "192.0.2.7")
    assert key != codes.address_key(b"k", "192.0.2.8")


def test_the_code_key_is_a_secret_required_in_production():
    from services.communes.settings import LOCAL_ADHESION_CODE_KEY, CommunesSettings

    assert CommunesSettings.from_config({}).adhesion_code_key == LOCAL_ADHESION_CODE_KEY.encode()
    for config in (
        {"ENVIRONMENT": "production"},
        {"ENVIRONMENT": "production", "ADHESION_CODE_KEY": LOCAL_ADHESION_CODE_KEY},
    ):
        with pytest.raises(RuntimeError):
            CommunesSettings.from_config(config)
    production = CommunesSettings.from_config(
        {"ENVIRONMENT": "production", "ADHESION_CODE_KEY": "s3cret" * 8}
    )
    assert production.adhesion_code_key == b"s3cret" * 8
