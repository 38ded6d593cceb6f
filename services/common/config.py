"""Settings from the environment with working local defaults (nameko's `${VAR:default}` YAML)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a nameko config.yml, expanding `${VAR:default}` exactly as `nameko run` does."""
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


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
