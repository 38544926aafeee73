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
    # The test expected to catch it (`{database}` filled in), run alone first: a fast verdict for most cases.
    # Every mutation names one (tests/test_mutations.py checks it exists).
    caught_by: str = ""


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
        caught_by="tests/test_api_contract.py::test_a_name_is_stored_verbatim_whatever_it_holds",
    ),
    Mutation(
        "dropped-await-ready",
        "/ready forgets to await the store's ping: it says ready without asking the database",
        HANDLERS,
        "    await request.app[STORE].ping()\n",
        "    request.app[STORE].ping()\n",
        caught_by="tests/test_api_contract.py::test_ready_reports_the_store_answering",
    ),
    Mutation(
        "wrong-status-created",
        "POST /items answers 200 instead of 201",
        HANDLERS,
        "item.to_json(), status=201, headers=headers)",
        "item.to_json(), status=200, headers=headers)",
        caught_by="tests/test_api_contract.py::test_names_people_write_are_kept_as_sent",
    ),
    Mutation(
        "wrong-status-deleted",
        "DELETE /items/{id} answers 200 instead of 204",
        HANDLERS,
        "return web.Response(status=204)",
        "return web.Response(status=200)",
        caught_by="tests/test_p10_http_api.py::test_delete_removes_the_item",
    ),
    Mutation(
        "missing-location-header",
        "POST /items no longer says where the new item lives",
        HANDLERS,
        '    headers = {"Location": f"/items/{item.id}"}\n',
        "    headers: dict[str, str] = {}\n",
        caught_by="tests/test_p10_http_api.py::test_create_returns_the_item_and_its_location",
    ),
    Mutation(
        "delete-missing-answers-204",
        "DELETE of an id that names no item answers 204 instead of 404",
        HANDLERS,
        "    if item is None:\n        raise no_such_item()\n    request.app[HUB].wake()\n",
        "    if item is not None:\n        request.app[HUB].wake()\n",
        caught_by="tests/test_p10_http_api.py::test_delete_removes_the_item",
    ),
    Mutation(
        "created-event-trigger-missing",
        "the migration records no event for a created item: subscribers never hear of new items",
        "src/{package}/migrations/sqlite/0002_create_events.sql",
        "CREATE TRIGGER item_created AFTER INSERT ON items BEGIN",
        "CREATE TRIGGER item_created AFTER INSERT ON items WHEN 0 BEGIN",
        databases=("sqlite",),
        caught_by="tests/test_api_contract.py::test_resuming_from_before_the_kept_events_gets_410",
    ),
    Mutation(
        "deleted-event-trigger-missing",
        "the migration records no event for a deleted item: subscribers keep showing it",
        "src/{package}/migrations/postgresql/0002_create_events.sql",
        "CREATE TRIGGER item_deleted AFTER DELETE ON items\n"
        "    FOR EACH ROW EXECUTE FUNCTION record_item_event('item.deleted');\n",
        "",
        databases=("postgresql",),
        caught_by="tests/test_p11_websocket.py::test_a_subscriber_resuming_after_an_event_id_gets_what_it_missed",
    ),
    Mutation(
        "hub-not-woken",
        "POST /items stores the item but never wakes the hub: with nothing else watching, no one hears of it",
        HANDLERS,
        "    if created:\n        request.app[HUB].wake()\n    else:\n",
        "    if not created:\n",
        databases=("none",),
        caught_by="tests/test_api_contract.py::test_resuming_from_before_the_kept_events_gets_410",
    ),
    Mutation(
        "replay-skipped",
        "a subscriber resuming with ?after=<id> gets only new events, not the ones it missed",
        EVENTS,
        "        self.cursor = hub.head if after is None else after",
        "        self.cursor = hub.head",
        caught_by="tests/test_api_contract.py::test_resuming_from_before_the_kept_events_gets_410",
    ),
    Mutation(
        "retention-bound-off-by-one",
        "a subscriber resuming from the oldest id still kept is refused with 410",
        HANDLERS,
        "after < hub.head - EVENT_RETENTION",
        "after <= hub.head - EVENT_RETENTION",
        caught_by="tests/test_api_contract.py::test_resuming_from_before_the_kept_events_gets_410",
    ),
    Mutation(
        "sync-sleep-in-handler",
        "GET /items throttles itself with time.sleep, blocking the loop",
        HANDLERS,
        '    """GET /items?limit=&offset=: one page of items, oldest first."""\n',
        '    """GET /items?limit=&offset=: one page of items, oldest first."""\n    time.sleep(0.05)\n',
        add_import="import time",
        caught_by="tests/test_api_contract.py::test_list_pages_with_limit_and_offset",
    ),
    Mutation(
        "fingerprint-on-the-loop",
        "the CPU-heavy fingerprint is computed on the loop instead of in a thread",
        HANDLERS,
        "digest = await asyncio.to_thread(fingerprint, item)",
        "digest = fingerprint(item)",
        caught_by="tests/test_p14_blocking.py::test_loop_keeps_ticking_while_the_handler_fingerprints",
    ),
    Mutation(
        "swallowed-cancellation",
        "a subscriber's sender catches CancelledError with the other errors: cancelled, it closes the socket itself",
        EVENTS,
        '        except Exception:\n            log.exception("sending events failed")\n',
        '        except BaseException:\n            log.exception("sending events failed")\n',
        caught_by="tests/test_concurrency.py::test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event",
    ),
    Mutation(
        "slow-subscriber-not-dropped",
        "a subscriber whose buffer is full silently misses events instead of being closed and told to resume",
        EVENTS,
        "        except asyncio.QueueFull:\n"
        '            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: {BUFFER} events behind")\n',
        "        except asyncio.QueueFull:\n            pass\n",
        caught_by="tests/test_p13_queue.py::test_full_queue_closes_its_subscriber_instead_of_blocking_the_producer",
    ),
    Mutation(
        "stalled-send-without-timeout",
        "sends to a subscriber have no timeout: one that stops reading keeps its sender (and its socket) forever",
        EVENTS,
        "            async with asyncio.timeout(SEND_TIMEOUT):\n"
        "                await self.subscriber.send_str(message)\n",
        "            await self.subscriber.send_str(message)\n",
        caught_by="tests/test_concurrency.py::test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event",
    ),
    Mutation(
        "failed-subscriber-not-dropped",
        "a subscriber whose connection broke stays subscribed, and every later event is offered to it",
        EVENTS,
        "        except ConnectionError:  # the subscriber went away; its handler ends the subscription\n"
        "            self.hub.subscriptions.discard(self)\n",
        "        except ConnectionError:  # the subscriber went away; its handler ends the subscription\n"
        "            pass\n",
        caught_by="tests/test_concurrency.py::test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event",
    ),
    Mutation(
        "hub-tasks-not-awaited",
        "the cleanup context stops the hub's tasks but does not wait for them to finish",
        EVENTS,
        "    await asyncio.wait({watch, delivery})\n",
        "",
        caught_by="tests/test_p06_cancellation.py::test_shutdown_closes_subscribers_then_cleanup_cancels_the_hub_tasks",
    ),
    Mutation(
        "shutdown-hub-not-registered",
        "the app no longer closes its websockets on shutdown: the server waits on every subscriber",
        "src/{package}/app.py",
        "    app.on_shutdown.append(shutdown_hub)\n",
        "",
        caught_by="tests/test_p06_cancellation.py::test_stopping_the_server_tells_connected_subscribers_where_to_resume",
    ),
    Mutation(
        "upstream-session-never-closed",
        "the shared upstream ClientSession is opened without `async with` and never closed",
        UPSTREAM,
        "    async with aiohttp.ClientSession(timeout=timeout) as session:\n"
        "        app[UPSTREAM] = session\n"
        "        yield\n",
        "    app[UPSTREAM] = aiohttp.ClientSession(timeout=timeout)\n    yield\n",
        caught_by="tests/test_api_contract.py::test_bad_bodies_get_400",
    ),
    Mutation(
        "upstream-timeout-not-applied",
        "the upstream session is built without UPSTREAM_TIMEOUT: a slow upstream holds requests for minutes",
        UPSTREAM,
        "aiohttp.ClientSession(timeout=timeout)",
        "aiohttp.ClientSession()",
        caught_by="tests/test_p05_timeouts.py::test_slow_upstream_answers_504",
    ),
    Mutation(
        "upstream-timeout-unmapped",
        "the JSON error mapping loses its UpstreamTimeout case: a slow upstream answers 502, not 504",
        ERRORS,
        "            if isinstance(error, UpstreamTimeout):\n"
        '                raise json_error(web.HTTPGatewayTimeout, "upstream_timeout", str(error)) from None\n',
        "",
        caught_by="tests/test_p05_timeouts.py::test_slow_upstream_answers_504",
    ),
    Mutation(
        "upstream-failure-not-logged",
        "an upstream failure answers 502/504 without its WARNING line: the log never says the upstream is down",
        ERRORS,
        '            log.warning("%s %s: %s", request.method, request.path, error)\n'
        "            if isinstance(error, UpstreamTimeout):\n",
        "            if isinstance(error, UpstreamTimeout):\n",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_logs.py::test_an_upstream_failure_is_one_warning_without_a_traceback",
    ),
    Mutation(
        "upstream-body-unbounded",
        "the upstream's answer is read whole, whatever its size: a 50 MB answer costs 50 MB per call",
        UPSTREAM,
        "data = json.loads(await read_at_most(response, max_bytes))",
        "data = json.loads(await response.read())",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_api_contract.py::test_an_upstream_answer_over_its_limit_gets_502_and_one_at_it_is_relayed",
    ),
    Mutation(
        "request-id-not-returned",
        "answers no longer carry X-Request-ID: a client cannot find its request in the log",
        "src/{package}/app.py",
        "    app.on_response_prepare.append(send_request_id)\n",
        "",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_logs.py::test_every_answer_carries_a_new_request_id",
    ),
    Mutation(
        "request-id-not-sent-upstream",
        "the upstream call goes without the request id: its log cannot be matched with this one",
        UPSTREAM,
        "session.get(url, headers=headers)",
        "session.get(url)",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_logs.py::test_a_clients_request_id_is_kept_if_sane_and_goes_upstream",
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
        caught_by="tests/test_faults_{database}.py",
    ),
    Mutation(
        "wrong-error-code",
        'a validation error is answered with code "bad_request" instead of the documented "invalid"',
        ERRORS,
        'web.HTTPBadRequest, "invalid", str(error)',
        'web.HTTPBadRequest, "bad_request", str(error)',
        caught_by="tests/test_api_contract.py::test_bad_bodies_get_400",
    ),
    Mutation(
        "quantity-not-validated",
        "the quantity is taken from the body as is: strings, booleans and negatives are stored",
        ITEMS,
        'quantity=_parse_quantity(data.get("quantity", 0))',
        'quantity=data.get("quantity", 0)',
        caught_by="tests/test_api_contract.py::test_bad_bodies_get_400",
    ),
    Mutation(
        "page-limit-lower-bound-off-by-one",
        "limit=0 is accepted (the lower bound is 0 instead of 1)",
        ITEMS,
        '"limit", default=20, low=1, high=PAGE_MAX)',
        '"limit", default=20, low=0, high=PAGE_MAX)',
        caught_by="tests/test_api_contract.py::test_bad_paging_gets_400",
    ),
    Mutation(
        "paging-upper-bound-off-by-one",
        "the paging bounds exclude their maximum: limit=100 is refused",
        ITEMS,
        "not low <= int(text) <= high",
        "not low <= int(text) < high",
        caught_by="tests/test_api_contract.py::test_paging_bounds_are_inclusive",
    ),
    Mutation(
        "module-fixture-now-function-scoped",
        "P4's module-scoped ClientSession fixture becomes function-scoped: nothing is shared any more",
        "tests/test_p04_shared_fixtures.py",
        '@pytest.fixture(scope="module")\n',
        "@pytest.fixture\n",
        caught_by="tests/test_p04_shared_fixtures.py::test_module_session_is_built_once_for_all_tests_of_the_file",
    ),
    Mutation(
        "commit-instead-of-rollback-sqlite",
        "the per-test transaction is committed instead of rolled back: tests see each other's rows",
        "tests/support/sqlite_fixtures.py",
        'await database.execute("ROLLBACK")',
        'await database.execute("COMMIT")',
        databases=("sqlite",),
        caught_by="tests/test_concurrency.py::test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event",
    ),
    Mutation(
        "commit-instead-of-rollback-postgresql",
        "the per-test transaction is committed instead of rolled back: tests see each other's rows",
        "tests/support/postgresql_fixtures.py",
        "            await transaction.rollback()",
        "            await transaction.commit()",
        databases=("postgresql",),
        caught_by="tests/test_concurrency.py::test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event",
    ),
    Mutation(
        "test-connection-lent-without-lock",
        "the test connection is lent to concurrent requests without the lock: asyncpg refuses overlapping queries",
        "tests/support/postgresql_fixtures.py",
        "        async with lock:\n            yield database\n",
        "        yield database\n",
        databases=("postgresql",),
        caught_by="tests/test_api_contract.py::test_a_name_is_stored_verbatim_whatever_it_holds",
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
        caught_by="tests/test_faults_sqlite.py::test_locked_file_gives_503_and_the_service_recovers_without_a_restart",
    ),
    Mutation(
        "sqlite-autocommit-dropped",
        "the SQLite connection leaves autocommit off: writes sit in an open transaction, acknowledged but not durable",
        "src/{package}/store_sqlite.py",
        "aiosqlite.connect(path, isolation_level=None)",
        "aiosqlite.connect(path)",
        databases=("sqlite",),
        caught_by="tests/test_faults_sqlite.py::test_locked_file_gives_503_and_the_service_recovers_without_a_restart",
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
        caught_by="tests/test_p02_fixture_cleanup.py::test_store_context_closes_its_database_connections_at_exit",
    ),
    Mutation(
        "memory-page-slice-off",
        "the in-memory store slices a page as [offset:limit] instead of [offset:offset + limit]",
        "src/{package}/store_memory.py",
        "[offset : offset + limit]",
        "[offset:limit]",
        databases=("none",),
        caught_by="tests/test_api_contract.py::test_list_pages_with_limit_and_offset",
    ),
    Mutation(
        "silent-listener-unchecked",
        "the PostgreSQL event listener only waits for its connection to close: one that goes silent is never noticed",
        "src/{package}/store_postgresql.py",
        '            await connection.execute("SELECT 1", timeout=CONNECT_TIMEOUT)\n',
        "            pass\n",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_a_listener_whose_connection_goes_silent_reconnects_and_catches_up",
    ),
]
