"""Communes' settings, read once from the service config (`${VAR:default}` in config.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

from services.common.config import required_secret

LOCAL_ADHESION_CODE_KEY = "local-dev-adhesion-key"  # noqa: S105 - refused in production
DEFAULT_CODE_TTL_DAYS = 30


@dataclass(frozen=True)
class CommunesSettings:
    public_url: str = "http://localhost:8000"
    adhesion_code_key: bytes = LOCAL_ADHESION_CODE_KEY.encode()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CommunesSettings:
        key = required_secret(config, "ADHESION_CODE_KEY", LOCAL_ADHESION_CODE_KEY)
        return cls(
            public_url=str(config.get("PUBLIC_URL") or cls.public_url).rstrip("/"),
            adhesion_code_key=key.encode("utf-8"),
        )


class Settings(DependencyProvider):
    """Injects the settings, read once when the service starts: a production service without
    ADHESION_CODE_KEY refuses to start instead of failing its first request."""

    def setup(self) -> None:
        self.settings = CommunesSettings.from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> CommunesSettings:
        return self.settings
