"""The OpenAPI 3.1 document, built from the routes themselves (`route` records each one), so the
document cannot drift from what the gateway serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, validate

from gateway.http import api

ROUTES: list[dict[str, Any]] = []

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code"},
        "message": {"type": "string", "description": "Explanation for people (French)"},
        "fields": {"type": "object", "description": "Per-field messages for VALIDATION_ERROR"},
        "retry_after": {"type": "integer", "description": "Seconds to wait (429)"},
    },
}


def route(
    methods: str,
    path: str,
    *,
    summary: str,
    tag: str,
    body: type[Schema] | None = None,
    responses: dict[int, str] | None = None,
    auth: bool = False,
    hidden: bool = False,
    response_schema: dict[str, Any] | None = None,
    query: type[Schema] | None = None,
    produces: tuple[str, ...] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a gateway HTTP entrypoint and its OpenAPI description. `query`: the schema of its
    query parameters; `produces`: the media types of a success other than JSON (files)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append(
            {
                "methods": methods.split(","),
                "path": path,
                "summary": summary,
                "tag": tag,
                "body": body,
                "responses": responses or {200: "OK"},
                "auth": auth,
                "hidden": hidden,
                "response_schema": response_schema,
                "query": query,
                "produces": produces,
                "operation": fn.__name__,
            }
        )
        return api(methods, path)(fn)

    return decorate


def openapi_path(werkzeug_path: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", werkzeug_path)


def _field_schema(field: fields.Field) -> dict[str, Any]:
    mapping = [
        (fields.Email, {"type": "string", "format": "email"}),
        (fields.Date, {"type": "string", "format": "date"}),
        (fields.DateTime, {"type": "string", "format": "date-time"}),
        (fields.Integer, {"type": "integer"}),
        (fields.Boolean, {"type": "boolean"}),
        (fields.String, {"type": "string"}),
        (fields.Dict, {"type": "object"}),
    ]
    schema: dict[str, Any] = {"type": "string"}
    for kind, described in mapping:
        if isinstance(field, kind):
            schema = dict(described)
            break
    if isinstance(field, fields.List):
        schema = {"type": "array", "items": _field_schema(field.inner)}
    if isinstance(field, fields.Nested):
        schema = schema_of(field.nested if isinstance(field.nested, type) else type(field.nested))
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            schema["enum"] = list(validator.choices)
        if isinstance(validator, validate.Range):
            if validator.min is not None:
                schema["minimum"] = validator.min
            if validator.max is not None:
                schema["maximum"] = validator.max
        if isinstance(validator, validate.Regexp):
            schema["pattern"] = validator.regex.pattern
        if isinstance(validator, validate.Length):
            if validator.min is not None:
                schema["minLength"] = validator.min
            if validator.max is not None:
                schema["maxLength"] = validator.max
    if field.allow_none:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def schema_of(schema_cls: type[Schema]) -> dict[str, Any]:
    declared = schema_cls().fields
    return {
        "type": "object",
        "properties": {name: _field_schema(field) for name, field in declared.items()},
        "required": sorted(name for name, field in declared.items() if field.required),
    }


def query_parameters(schema_cls: type[Schema]) -> list[dict[str, Any]]:
    return [
        {
            "name": field.data_key or name,
            "in": "query",
            "required": field.required,
            "schema": _field_schema(field),
        }
        for name, field in schema_cls().fields.items()
    ]


def file_content(media_type: str) -> dict[str, Any]:
    if media_type == "application/json":
        return {"schema": {"type": "object"}}
    if media_type == "application/pdf":
        return {"schema": {"type": "string", "format": "binary"}}
    return {"schema": {"type": "string"}}


def document(server_url: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for entry in ROUTES:
        if entry["hidden"]:
            continue
        path = openapi_path(entry["path"])
        params = re.findall(r"{([a-z_]+)}", path)
        for method in entry["methods"]:
            operation: dict[str, Any] = {
                "summary": entry["summary"],
                "operationId": f"{entry['operation']}_{method.lower()}"
                if len(entry["methods"]) > 1
                else entry["operation"],
                "tags": [entry["tag"]],
                "responses": {},
            }
            if params:
                operation["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
                ]
            if entry["query"] is not None:
                operation.setdefault("parameters", []).extend(query_parameters(entry["query"]))
            if entry["auth"]:
                operation["security"] = [{"bearerAuth": []}]
            if entry["body"] is not None and method in ("POST", "PUT", "PATCH"):
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema_of(entry["body"])}},
                }
            for status, description in sorted(entry["responses"].items()):
                response: dict[str, Any] = {"description": description}
                if status >= 400:
                    response["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    }
                elif entry["produces"] and status < 300 and status != 204:
                    response["content"] = {media: file_content(media) for media in entry["produces"]}
                elif entry["response_schema"] and status < 300 and status != 204:
                    response["content"] = {"application/json": {"schema": entry["response_schema"]}}
                operation["responses"][str(status)] = response
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portail Famille API",
            "version": "1.0.0",
            "description": "API of the family portal: accounts, single sign-on, communes, bookings, "
            "payments, family accounts, invoices and the finance office's exports. Errors are "
            '`{"error": CODE, "message": ...}`.',
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
