"""Typed keys for the state the application holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import ClientSession, web

from .settings import Settings

if TYPE_CHECKING:  # the modules below import these keys themselves
    from .events import Hub
    from .items import ItemStore

SETTINGS = web.AppKey("settings", Settings)
STORE: web.AppKey[ItemStore] = web.AppKey("store")
HUB: web.AppKey[Hub] = web.AppKey("hub")
UPSTREAM = web.AppKey("upstream", ClientSession)
REQUEST_ID = web.RequestKey("request_id", str)  # see logs.request_id
