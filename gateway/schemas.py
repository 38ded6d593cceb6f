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
    try:
        return schema().load(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "Certains champs sont invalides : " + ", ".join(sorted(map(str, exc.messages))) + ".",
            {"fields": exc.messages},
        ) from None


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
