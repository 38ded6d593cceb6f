"""Request bodies of the public API (marshmallow). They validate input (400 naming the fields)
and describe it in the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.wrappers import Request

from gateway.errors import InvalidJson, PayloadTooLarge
from services.common.errors import ValidationFailed

MAX_BODY_BYTES = 64 * 1024

# French first: the messages a parent may read when a form is refused.
_FRENCH = {
    fields.Field: {
        "required": "Champ obligatoire.",
        "null": "Ce champ ne peut pas être vide.",
        "validator_failed": "Valeur invalide.",
    },
    fields.String: {"invalid": "Une chaîne de caractères est attendue."},
    fields.Email: {"invalid": "Adresse e-mail invalide."},
    fields.Integer: {"invalid": "Un nombre entier est attendu."},
    fields.Boolean: {"invalid": "Une valeur vraie ou fausse est attendue."},
    fields.Date: {"invalid": "Une date AAAA-MM-JJ est attendue."},
    fields.List: {"invalid": "Une liste est attendue."},
}
for _field, _messages in _FRENCH.items():
    _field.default_error_messages = {**_field.default_error_messages, **_messages}


def length(min: int | None = None, max: int | None = None) -> validate.Length:  # noqa: A002
    if min and max:
        error = f"Entre {min} et {max} caractères."
    elif max:
        error = f"Au plus {max} caractères."
    else:
        error = f"Au moins {min} caractère(s)."
    return validate.Length(min=min, max=max, error=error)


def value_range(min: int, max: int) -> validate.Range:  # noqa: A002
    return validate.Range(min=min, max=max, error=f"Valeur attendue entre {min} et {max}.")


def one_of(choices: list[str]) -> validate.OneOf:
    return validate.OneOf(choices, error="Valeur attendue parmi : " + ", ".join(choices) + ".")


class _Body(Schema):
    class Meta:
        unknown = EXCLUDE


class RegisterBody(_Body):
    email = fields.Email(required=True, validate=length(max=254))
    password = fields.String(required=True)
    locale = fields.String(load_default=None, allow_none=True, validate=one_of(["fr", "en"]))


class VerifyBody(_Body):
    token = fields.String(required=True, validate=length(min=1, max=200))


class EmailBody(_Body):
    email = fields.String(required=True, validate=length(min=1, max=254))


class LoginBody(_Body):
    email = fields.String(required=True, validate=length(min=1, max=254))
    password = fields.String(required=True, validate=length(min=1, max=1024))


class RefreshBody(_Body):
    refresh_token = fields.String(required=True, validate=length(min=1, max=200))


class ResetBody(_Body):
    token = fields.String(required=True, validate=length(min=1, max=200))
    password = fields.String(required=True)


def read_json(request: Request) -> Any:
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    if not raw.strip():
        raise InvalidJson("Le corps de la requête est vide : un objet JSON est attendu.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson() from None


def load_body(request: Request, schema: type[Schema]) -> dict[str, Any]:
    """Parse and validate a JSON object body; errors name the fields."""
    data = read_json(request)
    if not isinstance(data, dict):
        raise InvalidJson()
    return _load(schema, data, "Certains champs sont invalides")


class CommuneBody(_Body):
    name = fields.String(required=True, validate=length(min=1, max=200))
    insee_code = fields.String(required=True, validate=length(min=5, max=5))
    timezone = fields.String(load_default=None, allow_none=True, validate=length(min=1, max=64))
    contact_email = fields.Email(load_default=None, allow_none=True, validate=length(max=254))
    code_ttl_days = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=value_range(1, 365)
    )


class AgentBody(_Body):
    email = fields.Email(required=True, validate=length(max=254))


class FamilyBody(_Body):
    reference = fields.String(required=True, validate=length(min=1, max=50))
    name = fields.String(required=True, validate=length(min=1, max=200))
    email = fields.Email(required=True, validate=length(max=254))
    quotient_familial = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=value_range(0, 100_000)
    )
    address = fields.String(load_default=None, allow_none=True, validate=length(max=500))


class FamilyPatchBody(_Body):
    reference = fields.String(validate=length(min=1, max=50))
    name = fields.String(validate=length(min=1, max=200))
    email = fields.Email(validate=length(max=254))
    quotient_familial = fields.Integer(allow_none=True, strict=True, validate=value_range(0, 100_000))
    address = fields.String(allow_none=True, validate=length(max=500))


class ChildBody(_Body):
    first_name = fields.String(required=True, validate=length(min=1, max=100))
    last_name = fields.String(required=True, validate=length(min=1, max=100))
    birth_date = fields.Date(required=True)
    school = fields.String(load_default=None, allow_none=True, validate=length(max=200))
    class_name = fields.String(load_default=None, allow_none=True, validate=length(max=50))


class AdhesionBody(_Body):
    code = fields.String(required=True, validate=length(min=1, max=40))


ACTIVITY_KINDS = ["canteen", "morning_care", "evening_care", "wednesday_leisure", "holiday_camp", "other"]


class ActivityBody(_Body):
    name = fields.String(required=True, validate=length(min=1, max=200))
    kind = fields.String(required=True, validate=one_of(ACTIVITY_KINDS))
    billing_mode = fields.String(required=True, validate=one_of(["prepaid", "postpaid"]))
    capacity = fields.Integer(required=True, strict=True, validate=value_range(0, 100_000))
    weekdays = fields.List(fields.String(), required=True, validate=length(min=1, max=7))
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    booking_deadline = fields.Dict(required=True)
    cancellation_deadline = fields.Dict(required=True)
    cancellation_approval = fields.String(load_default="auto", validate=one_of(["auto", "agent"]))
    waiting_list = fields.Boolean(load_default=False)
    min_age = fields.Integer(load_default=None, allow_none=True, strict=True, validate=value_range(0, 25))
    max_age = fields.Integer(load_default=None, allow_none=True, strict=True, validate=value_range(0, 25))
    classes = fields.List(fields.String(validate=length(min=1, max=50)), load_default=None, allow_none=True)
    hold_minutes = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=value_range(1, 1440)
    )


class ActivityPatchBody(_Body):
    name = fields.String(validate=length(min=1, max=200))
    kind = fields.String(validate=one_of(ACTIVITY_KINDS))
    billing_mode = fields.String(validate=one_of(["prepaid", "postpaid"]))
    capacity = fields.Integer(strict=True, validate=value_range(0, 100_000))
    weekdays = fields.List(fields.String(), validate=length(min=1, max=7))
    start_date = fields.Date()
    end_date = fields.Date()
    booking_deadline = fields.Dict()
    cancellation_deadline = fields.Dict()
    cancellation_approval = fields.String(validate=one_of(["auto", "agent"]))
    waiting_list = fields.Boolean()
    min_age = fields.Integer(allow_none=True, strict=True, validate=value_range(0, 25))
    max_age = fields.Integer(allow_none=True, strict=True, validate=value_range(0, 25))
    classes = fields.List(fields.String(validate=length(min=1, max=50)), allow_none=True)
    hold_minutes = fields.Integer(allow_none=True, strict=True, validate=value_range(1, 1440))


class ClosureBody(_Body):
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    reason = fields.String(required=True, validate=length(min=1, max=200))


class PeriodBody(_Body):
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    weekdays = fields.List(fields.String(), required=True, validate=length(min=1, max=7))


class CartItemsBody(_Body):
    child_id = fields.String(required=True, validate=length(min=1, max=64))
    activity_id = fields.String(required=True, validate=length(min=1, max=64))
    dates = fields.List(fields.Date(), validate=length(min=1, max=366))
    period = fields.Nested(PeriodBody)


class CartCancellationsBody(_Body):
    child_id = fields.String(required=True, validate=length(min=1, max=64))
    activity_id = fields.String(required=True, validate=length(min=1, max=64))
    dates = fields.List(fields.Date(), required=True, validate=length(min=1, max=366))


class DateRangeQuery(_Body):
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)


def load_query(request: Request, schema: type[Schema]) -> dict[str, Any]:
    """Validate query parameters like a body (400 naming the fields)."""
    return _load(schema, request.args.to_dict(flat=True), "Certains paramètres sont invalides")


_instances: dict[type[Schema], Schema] = {}


def _load(schema: type[Schema], data: dict[str, Any], problem: str) -> dict[str, Any]:
    # one instance per schema: marshmallow builds (deep-copies) every field when a schema is made,
    # which cost more than the validation itself; load() keeps no state between calls
    instance = _instances.get(schema) or _instances.setdefault(schema, schema())
    try:
        return instance.load(data)
    except ValidationError as exc:
        names = ", ".join(sorted(map(str, exc.messages)))
        raise ValidationFailed(f"{problem} : {names}.", {"fields": exc.messages}) from None


def plain(data: Any) -> Any:
    """Dates to ISO strings, `from_` to `from`: what the services take over RPC."""
    if isinstance(data, dict):
        return {("from" if key == "from_" else key): plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [plain(value) for value in data]
    return data.isoformat() if hasattr(data, "isoformat") else data
