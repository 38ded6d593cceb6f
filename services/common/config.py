"""Settings from the environment with working local defaults (nameko's `${VAR:default}` YAML)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor

REPO_ROOT = Path(__file__).resolve().parents[2]


class _EnvLoader(yaml.SafeLoader):
    """nameko's `${VAR:default}` rules on a private loader: `nameko run` patches yaml.SafeLoader
    for the whole process, which would change what every other yaml.safe_load in it returns."""


_EnvLoader.add_constructor("!env_var", env_var_constructor)
_EnvLoader.add_constructor("!raw_env_var", partial(env_var_constructor, raw=True))
_EnvLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a nameko config.yml, expanding `${VAR:default}` exactly as `nameko run` does."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_EnvLoader) or {}  # noqa: S506 - a SafeLoader subclass


def service_config(service: str) -> dict[str, Any]:
    """The config.yml of one service folder (`identity`, `notify`, ...) or of `gateway`."""
    folder = REPO_ROOT / "gateway" if service == "gateway" else REPO_ROOT / "services" / service
    return load_config(folder / "config.yml")


def is_production(config: dict[str, Any]) -> bool:
    return str(config.get("ENVIRONMENT", "local")).lower() == "production"


def required_secret(config: dict[str, Any], key: str, local_default: str) -> str:
    """A secret: the local default is accepted outside production only."""
    value = str(config.get(key) or "")
    if is_production(config) and (not value or value == local_default):
        raise RuntimeError(f"{key} must be set in production")
    return value or local_default
