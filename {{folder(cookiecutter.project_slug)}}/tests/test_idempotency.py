"""POST /items with an Idempotency-Key: a retry gets the item its key created, and nothing is stored twice.

The contract runs on the test's own store (rolled back per test); two concurrent requests and an answer lost
before a SIGTERM run on a real store, the last one across two real service processes.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.items import (
    IDEMPOTENCY_KEY_PRUNE_BATCH,
    IDEMPOTENCY_KEY_TTL,
    ItemStore,
    KeyReused,
    NewItem,
    ValidationError,
    parse_idempotency_key,
)
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import JSON_HEADERS, AgeKeys, Client, KeptKeys
from .support.service_process import running_service
from .support.tcp_proxy import tcp_proxy

KEY = {"Idempotency-Key": "3f2a9c1e-5b7d-4e08-a6f4-create-lamp"}
LAMP = {"name": "lamp", "quantity": 2}
CONCURRENT = 20
VISIBLE_ASCII = "".join(map(chr, range(0x21, 0x7F)))  # "!" to "~": quotes, backslash, "%" and "_" among them


async def error_code(response: aiohttp.ClientResponse) -> str:
    """The `error.code` of a JSON error response."""
    return str((await response.json())["error"]["code"])


async def test_a_retry_gets_the_item_its_key_created_and_nothing_is_stored_twice(
    client: Client, store: ItemStore
) -> None:
    first = await client.post("/items", json=LAMP, headers=KEY)
    events = await store.last_event_id()
    retry = await client.post("/items", json=LAMP, headers=KEY)

    assert (first.status, retry.status) == (201, 201)
    assert await retry.json() == await first.json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert [item.name for item in await store.list(limit=10, offset=0)] == ["lamp"]
    assert await store.last_event_id() == events  # the replay recorded no event


async def test_the_same_item_sent_in_other_words_is_the_same_request(client: Client) -> None:
    first = await client.post("/items", json={"name": "lamp"}, headers=KEY)
    retry = await client.post("/items", json={"name": "  lamp ", "quantity": 0}, headers=KEY)

    assert (retry.status, retry.headers["Idempotent-Replayed"]) == (201, "true")
    assert await retry.json() == await first.json()


@pytest.mark.parametrize(
    "retry",
    [b'{\n  "quantity" : 2,\n  "name":"lamp"\n}', b'{"name": "\\u006camp", "quantity": 2}'],
    ids=["key-order-and-whitespace", "escaped"],
)
async def test_the_same_item_in_other_json_is_replayed(client: Client, store: ItemStore, retry: bytes) -> None:
    """The key remembers the item as validated, not the bytes that carried it."""
    first = await client.post("/items", data=b'{"name": "lamp", "quantity": 2}', headers={**KEY, **JSON_HEADERS})
    replay = await client.post("/items", data=retry, headers={**KEY, **JSON_HEADERS})

    assert (replay.status, replay.headers.get("Idempotent-Replayed")) == (201, "true")
    assert await replay.json() == await first.json()
    assert len(await store.list(limit=10, offset=0)) == 1


@pytest.mark.parametrize(
    ("first", "retry"),
    [
        (LAMP, {"name": "desk", "quantity": 2}),
        (LAMP, {"name": "Lamp", "quantity": 2}),
        ({"name": "lamp1", "quantity": 2}, {"name": "lamp", "quantity": 12}),
    ],
    ids=["other-name", "other-case", "same-characters-split-otherwise"],
)
async def test_any_other_name_under_a_used_key_gets_422(
    client: Client, store: ItemStore, first: dict[str, object], retry: dict[str, object]
) -> None:
    await client.post("/items", json=first, headers=KEY)

    response = await client.post("/items", json=retry, headers=KEY)

    assert (response.status, await error_code(response)) == (422, "idempotency_key_reused")
    assert [item.name for item in await store.list(limit=10, offset=0)] == [first["name"]]


async def test_another_item_under_a_used_key_gets_422(client: Client, store: ItemStore) -> None:
    await client.post("/items", json=LAMP, headers=KEY)

    response = await client.post("/items", json={**LAMP, "quantity": 3}, headers=KEY)

    assert response.status == 422
    assert await error_code(response) == "idempotency_key_reused"
    assert [item.quantity for item in await store.list(limit=10, offset=0)] == [2]


async def test_keys_are_told_apart_and_requests_without_one_are_never_replayed(client: Client) -> None:
    plain = [await client.post("/items", json=LAMP) for _ in range(2)]
    keyed = [await client.post("/items", json=LAMP, headers={"Idempotency-Key": key}) for key in ("a", "A")]

    ids = {(await response.json())["id"] for response in plain + keyed}
    assert len(ids) == 4
    assert not [response for response in plain + keyed if "Idempotent-Replayed" in response.headers]


@pytest.mark.parametrize("key", ["", "a" * 256, "two words", "clé"], ids=["empty", "too-long", "space", "latin-1"])
async def test_a_malformed_key_gets_400(client: Client, store: ItemStore, key: str) -> None:
    response = await client.post("/items", json=LAMP, headers={"Idempotency-Key": key})

    assert response.status == 400
    assert await error_code(response) == "invalid"
    assert "Idempotency-Key" in (await response.json())["error"]["message"]
    assert await store.list(limit=10, offset=0) == []


@pytest.mark.parametrize("second", ["key-1", "key-2"], ids=["the-same-again", "another"])
async def test_two_key_headers_on_one_request_get_400(client: Client, store: ItemStore, second: str) -> None:
    headers = [("Idempotency-Key", "key-1"), ("Idempotency-Key", second)]

    response = await client.post("/items", json=LAMP, headers=headers)

    assert response.status == 400
    assert (await response.json())["error"]["message"] == "send one 'Idempotency-Key' header, not several"
    assert await store.list(limit=10, offset=0) == []


@pytest.mark.parametrize("key", ["a" * 255, "!", "~", "x"], ids=["longest", "first-visible", "last-visible", "one"])
async def test_key_bounds_are_inclusive(client: Client, key: str) -> None:
    response = await client.post("/items", json=LAMP, headers={"Idempotency-Key": key})

    assert response.status == 201


def test_a_key_may_hold_visible_ascii_and_nothing_else() -> None:
    """Every character up to U+02FF, one at a time: the rule takes visible ASCII and nothing else.

    The HTTP parser refuses DEL and most controls before the app sees them, so only the rule itself shows that they
    are outside it.
    """

    def accepted(key: str) -> bool:
        try:
            return parse_idempotency_key(key) == key
        except ValidationError:
            return False

    assert "".join(filter(accepted, map(chr, range(0x300)))) == VISIBLE_ASCII


async def test_a_key_of_every_visible_character_is_matched_exactly(client: Client) -> None:
    first = await client.post("/items", json=LAMP, headers={"Idempotency-Key": VISIBLE_ASCII})
    wildcard = await client.post("/items", json={"name": "desk"}, headers={"Idempotency-Key": "%"})
    retry = await client.post("/items", json=LAMP, headers={"Idempotency-Key": VISIBLE_ASCII})

    assert (first.status, wildcard.status, "Idempotent-Replayed" in wildcard.headers) == (201, 201, False)
    assert (await retry.json(), retry.headers["Idempotent-Replayed"]) == (await first.json(), "true")


async def test_a_key_is_forgotten_after_its_time_and_then_creates_a_new_item(client: Client, age_keys: AgeKeys) -> None:
    first = await (await client.post("/items", json=LAMP, headers=KEY)).json()

    await age_keys(IDEMPOTENCY_KEY_TTL - 1)
    within = await client.post("/items", json=LAMP, headers=KEY)
    await age_keys(2)
    after = await client.post("/items", json={"name": "desk"}, headers=KEY)
    again = await client.post("/items", json={"name": "desk"}, headers=KEY)

    assert (await within.json(), within.headers["Idempotent-Replayed"]) == (first, "true")
    assert (after.status, "Idempotent-Replayed" in after.headers) == (201, False)
    assert (await after.json())["id"] != first["id"]
    assert await again.json() == await after.json()


def test_keys_are_kept_24_hours_and_forgotten_100_at_a_time_as_the_readme_says() -> None:
    assert (IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_KEY_PRUNE_BATCH) == (24 * 60 * 60, 100)


async def test_a_key_is_forgotten_after_its_time_however_many_expired_before_it(
    store: ItemStore, age_keys: AgeKeys, kept_keys: KeptKeys
) -> None:
    for n in range(IDEMPOTENCY_KEY_PRUNE_BATCH + 1):  # more than one new key forgets
        await store.add_once(NewItem(name=f"older {n}", quantity=0), f"older {n}")
    lamp, _ = await store.add_once(NewItem(name="lamp", quantity=2), "lamp")
    await age_keys(IDEMPOTENCY_KEY_TTL + 1)

    desk, created = await store.add_once(NewItem(name="desk", quantity=0), "lamp")

    assert created
    assert desk.id != lamp.id
    assert await kept_keys() == 2  # one batch of the older keys forgotten, and the key that was used again


async def test_expired_keys_are_forgotten_as_new_ones_come(
    store: ItemStore, age_keys: AgeKeys, kept_keys: KeptKeys
) -> None:
    for n in range(3):
        await store.add_once(NewItem(name=f"item {n}", quantity=0), f"key {n}")
    await age_keys(IDEMPOTENCY_KEY_TTL - 1)
    await store.add_once(NewItem(name="newer", quantity=0), "newer key")
    kept_before_expiry = await kept_keys()
    await age_keys(2)

    await store.add_once(NewItem(name="newest", quantity=0), "newest key")

    assert (kept_before_expiry, await kept_keys()) == (4, 2)


async def test_expired_keys_are_forgotten_oldest_first_and_their_items_stay(
    store: ItemStore, age_keys: AgeKeys, kept_keys: KeptKeys
) -> None:
    await store.add_once(NewItem(name="oldest", quantity=0), "oldest")
    await age_keys(1)
    for n in range(IDEMPOTENCY_KEY_PRUNE_BATCH - 1):
        await store.add_once(NewItem(name=f"middle {n}", quantity=0), f"middle {n}")
    await age_keys(1)
    await store.add_once(NewItem(name="youngest", quantity=0), "youngest")
    await age_keys(IDEMPOTENCY_KEY_TTL + 1)  # one more expired key than a batch

    await store.add_once(NewItem(name="new", quantity=0), "new")
    kept, items = await kept_keys(), await store.list(limit=IDEMPOTENCY_KEY_PRUNE_BATCH + 10, offset=0)
    await age_keys(-IDEMPOTENCY_KEY_TTL)  # the youngest and oldest keys in time again, if they were kept

    async def remembers(key: str) -> bool:
        try:
            await store.add_once(NewItem(name="other", quantity=0), key)
        except KeyReused:
            return True
        return False

    assert (kept, len(items)) == (2, IDEMPOTENCY_KEY_PRUNE_BATCH + 2)
    assert (await remembers("oldest"), await remembers("youngest")) == (False, True)


async def test_a_retry_after_the_item_was_deleted_gets_the_original_answer(client: Client) -> None:
    first = await client.post("/items", json=LAMP, headers=KEY)
    location = first.headers["Location"]
    assert (await client.delete(location)).status == 204

    retry = await client.post("/items", json=LAMP, headers=KEY)

    assert (retry.status, await retry.json()) == (201, await first.json())
    assert (await client.get(location)).status == 404


async def test_concurrent_requests_with_one_key_store_one_item(
    aiohttp_client: AiohttpClient, service_env: dict[str, str]
) -> None:
    client = await aiohttp_client(create_app(Settings.from_env(service_env)))

    responses = await asyncio.gather(*(client.post("/items", json=LAMP, headers=KEY) for _ in range(CONCURRENT)))

    assert {response.status for response in responses} == {201}
    assert len({(await response.json())["id"] for response in responses}) == 1
    assert len([response for response in responses if "Idempotent-Replayed" not in response.headers]) == 1
    assert len((await (await client.get("/items")).json())["items"]) == 1


@pytest.mark.heavy  # two service processes
@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
async def test_an_answer_lost_before_a_sigterm_is_replayed_by_the_next_process(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    async with running_service(unused_tcp_port, service_env) as service, aiohttp.ClientSession() as session:
        async with tcp_proxy(("127.0.0.1", unused_tcp_port)) as proxy:
            proxy.hung_on = b"HTTP/1.1 201"  # the service committed the item and answered; the answer stops here
            lost = asyncio.ensure_future(session.post(f"http://127.0.0.1:{proxy.port}/items", json=LAMP, headers=KEY))
            async with asyncio.timeout(5):
                await proxy.until_hung()
            async with session.post(f"{service.url}/items", json=LAMP, headers=KEY) as retry:
                retried = (retry.status, retry.headers.get("Idempotent-Replayed"))
                item = await retry.json()
            stderr = await service.stop()
        with pytest.raises(aiohttp.ClientError):  # cut: the client never learns what became of its request
            await lost

    async with running_service(unused_tcp_port, service_env) as restarted, aiohttp.ClientSession() as session:
        async with session.post(f"{restarted.url}/items", json=LAMP, headers=KEY) as after_restart:
            replayed = (after_restart.status, after_restart.headers.get("Idempotent-Replayed"))
            item_after_restart = await after_restart.json()
        async with session.get(f"{restarted.url}/items") as listed:
            items = (await listed.json())["items"]
        await restarted.stop()

    assert service.process.returncode == 0, stderr
    assert (retried, item["name"]) == ((201, "true"), "lamp")
{%- if cookiecutter.database == "none" %}
    # Memory forgets: the new process has neither the item nor its key, so the retry creates the item anew.
    assert (replayed, items) == ((201, None), [item_after_restart])
{%- else %}
    assert (replayed, item_after_restart, items) == ((201, "true"), item, [item])
{%- endif %}
