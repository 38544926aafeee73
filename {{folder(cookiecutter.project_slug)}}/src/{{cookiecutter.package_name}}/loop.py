"""The event loop the service and its tests run on."""

from __future__ import annotations

import asyncio
{%- if cookiecutter.event_loop == "uvloop" %}
import sys
{%- endif %}
from collections.abc import Callable

{% if cookiecutter.event_loop == "uvloop" -%}
new_event_loop: Callable[[], asyncio.AbstractEventLoop]
if sys.platform != "win32":
    import uvloop

    new_event_loop = uvloop.new_event_loop
else:  # uvloop has no Windows build: the standard loop serves there
    new_event_loop = asyncio.new_event_loop
{%- else -%}
new_event_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
{%- endif %}


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """A readable name for a loop's type, e.g. `module.ClassName`."""
    kind = type(loop)
    return f"{kind.__module__}.{kind.__qualname__}"
