"""Service settings, read from the environment in one place."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

N = TypeVar("N", int, float)
HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8080
{%- if cookiecutter.database == "sqlite" %}
    database_url: str = "sqlite:///./data/app.db"
{%- elif cookiecutter.database == "postgresql" %}
    database_url: str = "postgresql://postgres@127.0.0.1:5432/{{ cookiecutter.package_name }}"
    database_pool_timeout: float = 2.0
{%- endif %}
{%- if cookiecutter.database != "none" %}
    database_timeout: float = 5.0
{%- endif %}
    upstream_url: str = "http://127.0.0.1:9000/status"
    upstream_timeout: float = 5.0
    upstream_max_bytes: int = 1024 * 1024
    max_body_bytes: int = 64 * 1024
    body_timeout: float = 15.0
    keepalive_timeout: float = 75.0
    log_format: str = "text"
    log_level: str = "INFO"
    access_log: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Build settings from the variables listed in .env.example; unset ones keep their defaults."""
        defaults = cls()
        return cls(
            host=_host(env, "HOST", defaults.host),
            port=_number(env, "PORT", defaults.port, int, 1, 65535),
{%- if cookiecutter.database != "none" %}
            database_url=env.get("DATABASE_URL", defaults.database_url),
            database_timeout=_number(env, "DATABASE_TIMEOUT", defaults.database_timeout, float, 0.001, 600),
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
            database_pool_timeout=_number(
                env, "DATABASE_POOL_TIMEOUT", defaults.database_pool_timeout, float, 0.001, 600
            ),
{%- endif %}
            upstream_url=env.get("UPSTREAM_URL", defaults.upstream_url),
            upstream_timeout=_number(env, "UPSTREAM_TIMEOUT", defaults.upstream_timeout, float, 0.001, 600),
            upstream_max_bytes=_number(env, "UPSTREAM_MAX_BYTES", defaults.upstream_max_bytes, int, 1, 2**30),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", defaults.max_body_bytes, int, 1, 2**30),
            body_timeout=_number(env, "BODY_TIMEOUT", defaults.body_timeout, float, 0.001, 600),
            keepalive_timeout=_number(env, "KEEPALIVE_TIMEOUT", defaults.keepalive_timeout, float, 0.001, 3600),
            log_format=_choice(env, "LOG_FORMAT", defaults.log_format, ("text", "json")),
            log_level=_choice(env, "LOG_LEVEL", defaults.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            access_log=_choice(env, "ACCESS_LOG", "on" if defaults.access_log else "off", ("on", "off")) == "on",
        )


def _number(env: Mapping[str, str], key: str, default: N, kind: type[N], low: N, high: N) -> N:
    text = env.get(key)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{key} must be a number from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key} must be a number from {low} to {high}, got {text!r}")
    return value


def _host(env: Mapping[str, str], key: str, default: str) -> str:
    """An IP address, or a host name that is not numbers alone (999.1.1.1 is a typo, not a name)."""
    host = env.get(key, default)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not HOST_NAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise SettingsError(f"{key} must be an IP address or a host name, got {host!r}") from None
    return host


def _choice(env: Mapping[str, str], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(key, default)
    if value not in allowed:
        raise SettingsError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value
