"""Service settings: each declared once, with its default, its rule and its meaning, and read from the environment."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


class Rule(Protocol):
    """What a variable may hold: how its text becomes a value, and how a value is written."""

    @property
    def allowed(self) -> str:
        """What a value must be, as the error says it: "a number from 1 to 65535"."""
        ...

    def parse(self, text: str) -> Any:
        """The value `text` stands for; ValueError when it breaks the rule."""
        ...

    def show(self, value: Any) -> str:
        """`value` as it is written in the environment."""
        ...


@dataclass(frozen=True)
class Number:
    """A whole number (`kind` int) or a decimal one (float), from `low` to `high`."""

    kind: type[int] | type[float]
    low: int | float
    high: int | float

    @property
    def allowed(self) -> str:
        return f"a number from {self.low} to {self.high}"

    def parse(self, text: str) -> int | float:
        value = self.kind(text)
        if not self.low <= value <= self.high:
            raise ValueError(text)
        return value

    def show(self, value: int | float) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)


class Text:
    """Any text (a URL: the code that uses it says what is wrong with it)."""

    allowed = "text"

    def parse(self, text: str) -> str:
        return text

    def show(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class OneOf(Text):
    """One of a few words."""

    options: tuple[str, ...]

    @property
    def allowed(self) -> str:  # type: ignore[override]
        return f"one of {', '.join(self.options)}"

    def parse(self, text: str) -> str:
        if text not in self.options:
            raise ValueError(text)
        return text


class Host(Text):
    """An IP address, or a host name that is not numbers alone (999.1.1.1 is a typo, not a name)."""

    allowed = "an IP address or a host name"

    def parse(self, text: str) -> str:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            if len(text) > 253 or not HOST_NAME.fullmatch(text) or text.replace(".", "").isdigit():
                raise
        return text


class Switch:
    """`on` or `off`, read as True or False."""

    WORDS = OneOf(("on", "off"))
    allowed = WORDS.allowed

    def parse(self, text: str) -> bool:
        return self.WORDS.parse(text) == "on"

    def show(self, value: bool) -> str:
        return "on" if value else "off"


SECONDS = Number(float, 0.001, 600)
{%- if cookiecutter.database != "none" %}
# A database timeout starts at a tenth of a second: a statement's round trip on a busy machine must fit in it, or
# the service could not even start (its start-up reads the store under the same timeout).
DATABASE_SECONDS = Number(float, 0.1, 600)
{%- endif %}
BYTES = Number(int, 1, 2**30)


def setting(default: T, rule: Rule, meaning: str) -> T:
    """A field of Settings: its default, the rule its variable follows, and what it means (the README's words)."""
    return dataclasses.field(default=default, metadata={"rule": rule, "meaning": meaning})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment: each field from the variable of its name in capitals."""

    host: str = setting(
        "127.0.0.1", Host(), "where to listen (use `HOST=0.0.0.0` only behind a firewall or in a container)"
    )
    port: int = setting(8080, Number(int, 1, 65535), "the port to listen on")
{%- if cookiecutter.database == "sqlite" %}
    database_url: str = setting(
        "sqlite:///./data/app.db",
        Text(),
        "the SQLite file; its folder is created, the schema is migrated at start-up",
    )
    database_timeout: float = setting(
        5.0,
        DATABASE_SECONDS,
        "seconds a write waits for its turn, then as long for the file's lock (another process may hold it), "
        "before it answers 503",
    )
{%- elif cookiecutter.database == "postgresql" %}
    database_url: str = setting(
        "postgresql://postgres@127.0.0.1:5432/{{ cookiecutter.package_name }}",
        Text(),
        "the database; the schema is migrated at start-up",
    )
    database_timeout: float = setting(
        5.0,
        DATABASE_SECONDS,
        "seconds a statement may run before it answers 503; the server stops it then too (migrations at start-up "
        "have no limit)",
    )
    database_pool_timeout: float = setting(
        2.0, DATABASE_SECONDS, "seconds a request waits for a connection from the pool before it answers 503"
    )
{%- endif %}
    upstream_url: str = setting("http://127.0.0.1:9000/status", Text(), "the upstream service `GET /upstream` calls")
    upstream_timeout: float = setting(5.0, SECONDS, "seconds before an upstream call answers 504")
    upstream_max_bytes: int = setting(
        1024 * 1024, BYTES, "a larger upstream answer gets 502, read no further than that"
    )
    max_body_bytes: int = setting(64 * 1024, BYTES, "larger request bodies get 413")
    body_timeout: float = setting(
        15.0,
        SECONDS,
        "seconds a client gets to send a request body; slower ones get 408 and the connection is closed",
    )
    keepalive_timeout: float = setting(
        75.0,
        Number(float, 0.001, 3600),
        "seconds a connection may go without sending a whole request (its headers included) before it is closed; "
        "keep it above your load balancer's idle timeout",
    )
    log_format: str = setting("text", OneOf(("text", "json")), "`json` gives one JSON object per line")
    log_level: str = setting("INFO", OneOf(("DEBUG", "INFO", "WARNING", "ERROR")), "the least severe lines logged")
    access_log: bool = setting(True, Switch(), "`off`: no access lines (see Logs)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Settings from the variables that are set; the others keep their defaults."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            if (text := env.get(name)) is not None:
                rule: Rule = field.metadata["rule"]
                try:
                    values[field.name] = rule.parse(text)
                except ValueError:
                    raise SettingsError(f"{name} must be {rule.allowed}, got {text!r}") from None
        return cls(**values)
