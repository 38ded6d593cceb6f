"""Request bodies and queries of the invoicing routes (marshmallow), built with gateway/schemas.py's
helpers (French messages, 400 naming the fields)."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from gateway.schemas import _Body, one_of

EXPORT_FORMATS = ["csv", "json"]
# a real month of this century: billing checks it again, this keeps nonsense from reaching it
MONTH_PATTERN = r"^20\d{2}-(0[1-9]|1[0-2])$"
MONTH_MESSAGE = "Un mois AAAA-MM est attendu (par exemple 2026-03)."


class FullMatch(validate.Regexp):
    """A pattern the whole value must match (Python's `$` would let a trailing newline through);
    still a Regexp, so the OpenAPI document shows the pattern."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def month_field() -> fields.String:
    return fields.String(required=True, validate=FullMatch(MONTH_PATTERN, error=MONTH_MESSAGE))


class RunBody(_Body):
    month = month_field()


class ExportQuery(_Body):
    month = month_field()
    format = fields.String(load_default="csv", validate=one_of(EXPORT_FORMATS))
