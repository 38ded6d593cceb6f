"""The RPC shapes: rows as JSON-ready dicts (ids as strings, dates and times as ISO 8601)."""

from __future__ import annotations

from typing import Any

from services.communes.models import Child, Commune, Family


def commune(row: Commune) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "insee_code": row.insee_code,
        "timezone": row.timezone,
        "contact_email": row.contact_email,
        "code_ttl_days": row.code_ttl_days,
        "created_at": row.created_at.isoformat(),
    }


def family(row: Family) -> dict[str, Any]:
    return {
        "id": row.id,
        "commune_id": row.commune_id,
        "reference": row.reference,
        "name": row.name,
        "email": row.email,
        "address": row.address,
        "quotient_familial": row.quotient_familial,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def child(row: Child) -> dict[str, Any]:
    return {
        "id": row.id,
        "family_id": row.family_id,
        "commune_id": row.commune_id,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "birth_date": row.birth_date.isoformat(),
        "school": row.school,
        "class_name": row.class_name,
        "created_at": row.created_at.isoformat(),
    }


def my_child(row: Child) -> dict[str, Any]:
    """What a parent sees of their child."""
    return {
        "id": row.id,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "birth_date": row.birth_date.isoformat(),
        "school": row.school,
        "class_name": row.class_name,
        "family_id": row.family_id,
    }
