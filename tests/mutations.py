"""Realistic bugs the baked suite must catch: each one is an edit to a freshly baked project.

tests/test_mutations.py applies one at a time to a copy of a default bake (per
database it applies to) and runs the baked suite, which must fail. `find` must
occur exactly once in `path`; when a template change makes it miss, that case
fails and names the mutation, so the list is kept in step with the template.
`{package}` in a path is the baked import package's folder.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL = ("sqlite", "postgresql", "none")
SQL = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Mutation:
    """One bug: replace `find` by `replace` in `path` (and add `add_import` under the __future__ import)."""

    id: str
    description: str
    path: str
    find: str
    replace: str
    databases: tuple[str, ...] = ALL
    add_import: str = ""


HANDLERS = "src/{package}/handlers.py"
EVENTS = "src/{package}/events.py"
ITEMS = "src/{package}/items.py"
ERRORS = "src/{package}/errors.py"
UPSTREAM = "src/{package}/upstream.py"

MUTATIONS = [
    Mutation(
        "dropped-await-add",
        "create_item forgets to await the store: the coroutine, not the item, is published and returned",
        HANDLERS,
        "await request.app[STORE].add(new)",
        "request.app[STORE].add(new)",
    ),
    Mutation(
        "dropped-await-ready",
        "/ready forgets to await the store's ping: it says ready without asking the database",
        HANDLERS,
        "    await request.app[STORE].ping()\n",
        "    request.app[STORE].ping()\n",
    ),
    Mutation(
        "wrong-status-created",
        "POST /items answers 200 instead of 201",
        HANDLERS,
        "item.to_json(), status=201, headers=headers)",
        "item.to_json(), status=200, headers=headers)",
    ),
    Mutation(
        "wrong-status-deleted",
        "DELETE /items/{id} answers 200 instead of 204",
        HANDLERS,
        "return web.Response(status=204)",
        "return web.Response(status=200)",
    ),
    Mutation(
        "missing-location-header",
        "POST /items no longer says where the new item lives",
        HANDLERS,
        '    headers = {"Location": f"/items/{item.id}"}\n',
        "    headers: dict[str, str] = {}\n",
    ),
    Mutation(
        "delete-missing-answers-204",
        "DELETE of an id that names no item answers 204 instead of 404",
        HANDLERS,
        "    if item is None:\n        raise no_such_item()\n    request.app[HUB].wake()\n",
        "    if item is not None:\n        request.app[HUB].wake()\n",
    ),
    Mutation(
        "created-event-trigger-missing",
        "the migration records no event for a created item: subscribers never hear of new items",
        "src/{package}/migrations/sqlite/0002_create_events.sql",
        "CREATE TRIGGER item_created AFTER INSERT ON items BEGIN",
        "CREATE TRIGGER item_created AFTER INSERT ON items WHEN 0 BEGIN",
        databases=("sqlite",),
    ),
    Mutation(
        "deleted-event-trigger-missing",
        "the migration records no event for a deleted item: subscribers keep showing it",
        "src/{package}/migrations/postgresql/0002_create_events.sql",
        "CREATE TRIGGER item_deleted AFTER DELETE ON items\n"
        "    FOR EACH ROW EXECUTE FUNCTION record_item_event('item.deleted');\n",
        "",
        databases=("postgresql",),
    ),
    Mutation(
        "hub-not-woken",
        "POST /items stores the item but never wakes the hub: with nothing else watching, no one hears of it",
        HANDLERS,
        "    if created:\n        request.app[HUB].wake()\n    else:\n",
        "    if not created:\n",
        databases=("none",),
    ),
    Mutation(
        "replay-skipped",
        "a subscriber resuming with ?after=<id> gets only new events, not the ones it missed",
        EVENTS,
        "        self.cursor = hub.head if after is None else after",
        "        self.cursor = hub.head",
    ),
    Mutation(
        "retention-bound-off-by-one",
        "a subscriber resuming from the oldest id still kept is refused with 410",
        HANDLERS,
        "after < hub.head - EVENT_RETENTION",
        "after <= hub.head - EVENT_RETENTION",
    ),
    Mutation(
        "sync-sleep-in-handler",
        "GET /items throttles itself with time.sleep, blocking the loop",
        HANDLERS,
        '    """GET /items?limit=&offset=: one page of items, oldest first."""\n',
        '    """GET /items?limit=&offset=: one page of items, oldest first."""\n    time.sleep(0.05)\n',
        add_import="import time",
    ),
    Mutation(
        "fingerprint-on-the-loop",
        "the CPU-heavy fingerprint is computed on the loop instead of in a thread",
        HANDLERS,
        "digest = await asyncio.to_thread(fingerprint, item)",
        "digest = fingerprint(item)",
    ),
    Mutation(
        "swallowed-cancellation",
        "a subscriber's sender catches CancelledError with the other errors: cancelled, it closes the socket itself",
        EVENTS,
        '        except Exception:\n            log.exception("sending events failed")\n',
        '        except BaseException:\n            log.exception("sending events failed")\n',
    ),
    Mutation(
        "slow-subscriber-not-dropped",
        "a subscriber whose buffer is full silently misses events instead of being closed and told to resume",
        EVENTS,
        "        except asyncio.QueueFull:\n"
        '            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: {BUFFER} events behind")\n',
        "        except asyncio.QueueFull:\n            pass\n",
    ),
    Mutation(
        "stalled-send-without-timeout",
        "sends to a subscriber have no timeout: one that stops reading keeps its sender (and its socket) forever",
        EVENTS,
        "            async with asyncio.timeout(SEND_TIMEOUT):\n"
        "                await self.subscriber.send_str(message)\n",
        "            await self.subscriber.send_str(message)\n",
    ),
    Mutation(
        "failed-subscriber-not-dropped",
        "a subscriber whose connection broke stays subscribed, and every later event is offered to it",
        EVENTS,
        "        except ConnectionError:  # the subscriber went away; its handler ends the subscription\n"
        "            self.hub.subscriptions.discard(self)\n",
        "        except ConnectionError:  # the subscriber went away; its handler ends the subscription\n"
        "            pass\n",
    ),
    Mutation(
        "hub-tasks-not-awaited",
        "the cleanup context stops the hub's tasks but does not wait for them to finish",
        EVENTS,
        "    await asyncio.wait({watch, delivery})\n",
        "",
    ),
    Mutation(
        "shutdown-hub-not-registered",
        "the app no longer closes its websockets on shutdown: the server waits on every subscriber",
        "src/{package}/app.py",
        "    app.on_shutdown.append(shutdown_hub)\n",
        "",
    ),
    Mutation(
        "upstream-session-never-closed",
        "the shared upstream ClientSession is opened without `async with` and never closed",
        UPSTREAM,
        "    async with aiohttp.ClientSession(timeout=timeout) as session:\n"
        "        app[UPSTREAM] = session\n"
        "        yield\n",
        "    app[UPSTREAM] = aiohttp.ClientSession(timeout=timeout)\n    yield\n",
    ),
    Mutation(
        "upstream-timeout-not-applied",
        "the upstream session is built without UPSTREAM_TIMEOUT: a slow upstream holds requests for minutes",
        UPSTREAM,
        "aiohttp.ClientSession(timeout=timeout)",
        "aiohttp.ClientSession()",
    ),
    Mutation(
        "upstream-timeout-unmapped",
        "the JSON error mapping loses its UpstreamTimeout case: a slow upstream answers 502, not 504",
        ERRORS,
        "            if isinstance(error, UpstreamTimeout):\n"
        '                raise json_error(web.HTTPGatewayTimeout, "upstream_timeout", str(error)) from None\n',
        "",
    ),
    Mutation(
        "upstream-failure-not-logged",
        "an upstream failure answers 502/504 without its WARNING line: the log never says the upstream is down",
        ERRORS,
        '            log.warning("%s %s: %s", request.method, request.path, error)\n'
        "            if isinstance(error, UpstreamTimeout):\n",
        "            if isinstance(error, UpstreamTimeout):\n",
        databases=("none",),  # none of the stores is involved
    ),
    Mutation(
        "upstream-body-unbounded",
        "the upstream's answer is read whole, whatever its size: a 50 MB answer costs 50 MB per call",
        UPSTREAM,
        "data = json.loads(await read_at_most(response, max_bytes))",
        "data = json.loads(await response.read())",
        databases=("none",),  # none of the stores is involved
    ),
    Mutation(
        "request-id-not-returned",
        "answers no longer carry X-Request-ID: a client cannot find its request in the log",
        "src/{package}/app.py",
        "    app.on_response_prepare.append(send_request_id)\n",
        "",
        databases=("none",),  # none of the stores is involved
    ),
    Mutation(
        "request-id-not-sent-upstream",
        "the upstream call goes without the request id: its log cannot be matched with this one",
        UPSTREAM,
        "session.get(url, headers=headers)",
        "session.get(url)",
        databases=("none",),  # none of the stores is involved
    ),
    Mutation(
        "database-errors-unmapped",
        "the JSON error mapping loses its DatabaseUnavailable case: a database outage answers 500, not 503",
        ERRORS,
        "        except DatabaseUnavailable as error:\n"
        '            log.warning("%s %s: %s", request.method, request.path, error)\n'
        "            raise json_error(\n"
        '                web.HTTPServiceUnavailable, "database_unavailable", str(error), headers={"Retry-After": "1"}\n'
        "            ) from None\n",
        "",
        databases=SQL,
    ),
    Mutation(
        "wrong-error-code",
        'a validation error is answered with code "bad_request" instead of the documented "invalid"',
        ERRORS,
        'web.HTTPBadRequest, "invalid", str(error)',
        'web.HTTPBadRequest, "bad_request", str(error)',
    ),
    Mutation(
        "quantity-not-validated",
        "the quantity is taken from the body as is: strings, booleans and negatives are stored",
        ITEMS,
        'quantity=_parse_quantity(data.get("quantity", 0))',
        'quantity=data.get("quantity", 0)',
    ),
    Mutation(
        "page-limit-lower-bound-off-by-one",
        "limit=0 is accepted (the lower bound is 0 instead of 1)",
        ITEMS,
        '"limit", default=20, low=1, high=PAGE_MAX)',
        '"limit", default=20, low=0, high=PAGE_MAX)',
    ),
    Mutation(
        "paging-upper-bound-off-by-one",
        "the paging bounds exclude their maximum: limit=100 is refused",
        ITEMS,
        "not low <= int(text) <= high",
        "not low <= int(text) < high",
    ),
    Mutation(
        "module-fixture-now-function-scoped",
        "P4's module-scoped ClientSession fixture becomes function-scoped: nothing is shared any more",
        "tests/test_p04_shared_fixtures.py",
        '@pytest.fixture(scope="module")\n',
        "@pytest.fixture\n",
    ),
    Mutation(
        "commit-instead-of-rollback-sqlite",
        "the per-test transaction is committed instead of rolled back: tests see each other's rows",
        "tests/support/sqlite_fixtures.py",
        'await database.execute("ROLLBACK")',
        'await database.execute("COMMIT")',
        databases=("sqlite",),
    ),
    Mutation(
        "commit-instead-of-rollback-postgresql",
        "the per-test transaction is committed instead of rolled back: tests see each other's rows",
        "tests/support/postgresql_fixtures.py",
        "            await transaction.rollback()",
        "            await transaction.commit()",
        databases=("postgresql",),
    ),
    Mutation(
        "test-connection-lent-without-lock",
        "the test connection is lent to concurrent requests without the lock: asyncpg refuses overlapping queries",
        "tests/support/postgresql_fixtures.py",
        "        async with lock:\n            yield database\n",
        "        yield database\n",
        databases=("postgresql",),
    ),
    Mutation(
        "sqlite-connection-never-closed",
        "the SQLite store context opens its connection and never closes it",
        "src/{package}/store_sqlite.py",
        "    try:\n"
        "        await migrate(connection)\n"
        "        app[STORE] = SqliteItemStore(connection, settings)\n"
        "        yield\n"
        "    finally:\n"
        "        await connection.close()\n",
        "    await migrate(connection)\n    app[STORE] = SqliteItemStore(connection, settings)\n    yield\n",
        databases=("sqlite",),
    ),
    Mutation(
        "sqlite-autocommit-dropped",
        "the SQLite connection leaves autocommit off: writes sit in an open transaction, acknowledged but not durable",
        "src/{package}/store_sqlite.py",
        "aiosqlite.connect(path, isolation_level=None)",
        "aiosqlite.connect(path)",
        databases=("sqlite",),
    ),
    Mutation(
        "postgresql-pool-never-closed",
        "the PostgreSQL store context opens its pool and never closes it",
        "src/{package}/store_postgresql.py",
        "    try:\n"
        "        acquire = functools.partial(pool.acquire, timeout=settings.database_pool_timeout)\n"
        "        app[STORE] = PostgresItemStore(acquire, settings, listen_url=url)\n"
        "        yield\n"
        "    finally:\n"
        "        await pool.close()\n",
        "    acquire = functools.partial(pool.acquire, timeout=settings.database_pool_timeout)\n"
        "    app[STORE] = PostgresItemStore(acquire, settings, listen_url=url)\n"
        "    yield\n",
        databases=("postgresql",),
    ),
    Mutation(
        "memory-page-slice-off",
        "the in-memory store slices a page as [offset:limit] instead of [offset:offset + limit]",
        "src/{package}/store_memory.py",
        "[offset : offset + limit]",
        "[offset:limit]",
        databases=("none",),
    ),
    Mutation(
        "silent-listener-unchecked",
        "the PostgreSQL event listener only waits for its connection to close: one that goes silent is never noticed",
        "src/{package}/store_postgresql.py",
        "            await connection.execute(\"SELECT 1\", timeout=CONNECT_TIMEOUT)\n",
        "            pass\n",
        databases=("postgresql",),
    ),
]
