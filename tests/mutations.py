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
    # Caught only by the full proof (a real process, real timeouts, thousands of writes): the suite runs with --heavy.
    heavy: bool = False


HANDLERS = "src/{package}/handlers.py"
EVENTS = "src/{package}/events.py"
ITEMS = "src/{package}/items.py"
ERRORS = "src/{package}/errors.py"
UPSTREAM = "src/{package}/upstream.py"

SCHEMAS = "src/{package}/schemas.py"
LENDER = "src/{package}/lender.py"
POOL = "tests/test_pool_postgresql.py::"
ARRIVAL_ORDER = POOL + "test_statements_waiting_for_a_connection_get_it_in_arrival_order_straight_from_the_last"
SECOND_POOL_TIMEOUT = POOL + "test_a_statement_that_waited_its_turn_gets_no_second_pool_timeout_to_connect"
OPENAPI = "tests/test_openapi.py::"

MUTATIONS = [
    Mutation(
        "openapi-name-one-too-long",
        "the document lets a name be one character longer than the service takes",
        SCHEMAS,
        'between = "{0," + str(NAME_MAX_LENGTH - 2) + "}"',
        'between = "{0," + str(NAME_MAX_LENGTH - 1) + "}"',
        caught_by=OPENAPI + "test_a_name_the_schema_accepts_is_one_the_service_takes",
    ),
    Mutation(
        "openapi-quantity-written-as-a-float-refused",
        "a quantity of 3.0, an integer to JSON Schema (and to the document), gets a 400",
        ITEMS,
        "        value = int(value)\n",
        "        pass\n",
        caught_by=OPENAPI + "test_a_body_the_schema_accepts_is_one_the_service_takes",
    ),
    Mutation(
        "openapi-route-left-out",
        "the document leaves out every DELETE route",
        "src/{package}/openapi.py",
        'if route.method in {"HEAD", "*"}:',
        'if route.method in {"HEAD", "*", "DELETE"}:',
        caught_by=OPENAPI + "test_every_route_is_in_the_document",
    ),
    Mutation(
        "openapi-status-undocumented",
        "the document forgets that POST /items answers 415 to a body not sent as JSON",
        HANDLERS,
        '            415: Answer("the body is not sent as application/json", ERROR),\n',
        "",
        caught_by=OPENAPI + "test_schemathesis_finds_nothing_against_the_running_service",
        heavy=True,
    ),
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
        caught_by="tests/test_p14_blocking.py::test_the_loop_does_not_compute_the_fingerprint",
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
        "            self.leave()\n",
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
        "    if isinstance(error, UpstreamTimeout):\n"
        '        return json_error(web.HTTPGatewayTimeout, "upstream_timeout", str(error))\n',
        "",
        caught_by="tests/test_p05_timeouts.py::test_slow_upstream_answers_504",
    ),
    Mutation(
        "upstream-failure-not-logged",
        "a store or upstream failure is answered without its WARNING line: the log never says what is down",
        ERRORS,
        '    log.warning("%s %s: %s", request.method, request.path, error)\n',
        "",
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
        ERRORS,
        "        response.headers.setdefault(REQUEST_ID_HEADER, request_id(request))",
        "        pass",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_logs.py::test_every_answer_carries_a_new_request_id",
    ),
    Mutation(
        "request-id-made-again-for-an-error",
        (
            "an error answer gets a new request id instead of the one its handler kept: a 502 from GET /upstream "
            "names another id than the one the upstream service was sent and logged"
        ),
        ERRORS,
        "identifier = request.get(REQUEST_ID) or request_id(request)",
        "identifier = request_id(request)",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_logs.py::test_an_upstream_failure_is_answered_under_the_request_id_that_went_upstream",
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
        "the JSON error mapping loses its StoreUnavailable case: a database outage answers 502, not 503",
        ERRORS,
        "    if isinstance(error, StoreUnavailable):\n"
        '        return json_error(web.HTTPServiceUnavailable, "unavailable", str(error), '
        'headers={"Retry-After": "1"})\n',
        "",
        caught_by="tests/test_api_contract.py::test_every_503_says_when_to_retry",
    ),
    Mutation(
        "errors-bug-not-answered",
        "a bug in a handler escapes `handled`: aiohttp answers a text 500 without the request id, logged without it",
        ERRORS,
        "        except Exception as error:\n",
        "        except (web.HTTPException, ValidationError, KeyReused, StoreUnavailable, UpstreamError) as error:\n",
        databases=("none",),  # none of the stores is involved
        caught_by="tests/test_logs.py::test_a_bug_in_a_handler_is_a_json_500_and_one_error_with_its_traceback_naming_the_request",
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
        '"limit", default=PAGE_LIMIT, low=1, high=PAGE_MAX)',
        '"limit", default=PAGE_LIMIT, low=0, high=PAGE_MAX)',
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
        "        app[STORE] = PostgresItemStore(lender, settings, listen_url=url)\n"
        "        yield\n"
        "    finally:\n"
        "        await pool.close()\n",
        "        app[STORE] = PostgresItemStore(lender, settings, listen_url=url)\n"
        "        yield\n"
        "    finally:\n"
        "        pass\n",
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
    Mutation(
        "postgresql-ready-ignores-read-only",
        "/ready answers 200 while the database takes no writes (a standby, default_transaction_read_only)",
        "src/{package}/store_postgresql.py",
        "        if read_only:\n",
        "        if False:\n",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_ready_is_a_503_saying_why_while_the_database_takes_no_writes_and_200_once_it_does",
    ),
    Mutation(
        "postgresql-listener-idles-out",
        "the event listener's session is ended by the server's idle_session_timeout, and reconnects over and over",
        "src/{package}/store_postgresql.py",
        (
            '        await connection.execute("SET idle_session_timeout = 0")'
            "  # it waits in silence by design: never idle\n"
        ),
        "        pass\n",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_the_event_listener_keeps_its_session_through_the_servers_idle_session_timeout",
    ),
    Mutation(
        "database-timeout-minimum-too-low",
        "DATABASE_TIMEOUT may be set to 1 ms, where PostgreSQL cannot start (a traceback, not one line)",
        "src/{package}/settings.py",
        "DATABASE_SECONDS = Number(float, 0.1, 600)",
        "DATABASE_SECONDS = Number(float, 0.001, 600)",
        databases=("postgresql",),
        caught_by="tests/test_process.py::test_each_number_at_its_bounds_starts_or_is_refused_with_one_line",
        heavy=True,
    ),
    Mutation(
        "second-sigterm-kills",
        "a second SIGTERM during the shutdown kills the process: no 'stopped' line, and not exit 0",
        "src/{package}/__main__.py",
        "            signal.signal(number, signal.SIG_IGN)\n",
        "            pass\n",
        caught_by="tests/test_process.py::test_a_second_sigterm_during_the_shutdown_changes_nothing",
        heavy=True,
    ),
    Mutation(
        "sqlite-ready-ignores-file-system",
        "SQLite /ready answers 200 on a full or read-only file system, where every write fails",
        "src/{package}/store_sqlite.py",
        "await asyncio.to_thread(check_file_system, self._folder, self._statvfs)",
        "pass",
        databases=("sqlite",),
        caught_by="tests/test_faults_sqlite.py::test_a_full_or_read_only_file_system_is_not_ready_until_it_clears",
    ),
    # Written by someone who had read only the README and src/, never the tests (issue 22): 50 bugs, of which
    # one is left out, pg-timeout-connection-not-terminated, as no client can tell it from the code as it is
    # (same answers, same timings, measured).
    Mutation(
        "events-stop-keeps-subscriber",
        (
            "a websocket client that disconnects stays in the hub's subscriber set: events keep being buffered "
            "for it and it is later 'closed' by a stray task (subscriber leak)"
        ),
        EVENTS,
        "            return\n        self.leave()\n        await self.stop_sending()\n",
        "            return\n        await self.stop_sending()\n",
        caught_by="tests/test_concurrency.py::test_a_subscription_goes_through_its_states_in_order_and_is_in_the_hub_only_while_it_sends",
    ),
    Mutation(
        "events-dedupe-inclusive",
        (
            "hand-over from replay to live: an event both replayed and buffered is sent twice to a resuming "
            "subscriber (>= instead of >)"
        ),
        EVENTS,
        "if event_id > self.cursor:",
        "if event_id >= self.cursor:",
        caught_by="tests/test_concurrency.py::test_a_resuming_subscriber_gets_every_missed_event_once_across_batches_and_the_hand_over",
    ),
    Mutation(
        "events-replay-one-batch-only",
        (
            "a client resuming with ?after= more than 500 events back gets only the first batch replayed, then "
            "live events: the rest are silently skipped"
        ),
        EVENTS,
        "while self.cursor < self.replay_to and (events := await self.hub.store.events_after(self.cursor, BATCH)):",
        "if self.cursor < self.replay_to and (events := await self.hub.store.events_after(self.cursor, BATCH)):",
        caught_by="tests/test_concurrency.py::test_a_resuming_subscriber_gets_every_missed_event_once_across_batches_and_the_hand_over",
    ),
    Mutation(
        "events-hub-head-not-initialised",
        (
            "after a restart the hub starts at event 0: a new subscriber without ?after= is flooded with old "
            "history (and closed as too slow), and 410 is never answered"
        ),
        EVENTS,
        "    hub.head = await hub.store.last_event_id()  # before the first subscriber comes\n",
        "",
        databases=SQL,
        caught_by="tests/test_api_contract.py::test_a_new_subscriber_gets_new_events_only_not_the_history",
    ),
    Mutation(
        "events-overflow-swallowed",
        "a subscriber 1,000 events behind is not closed with 1013 and a resume id; it silently loses events instead",
        EVENTS,
        (
            '        except asyncio.QueueFull:\n            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: '
            '{BUFFER} events behind")'
        ),
        "        except asyncio.QueueFull:\n            pass  # a slow subscriber skips events until it catches up",
        caught_by="tests/test_concurrency.py::test_a_subscriber_closed_as_too_slow_resumes_after_exactly_the_last_event_it_was_sent",
    ),
    Mutation(
        "events-close-reason-no-resume-id",
        (
            "a websocket closed as too slow or at shutdown no longer says where to resume (after=<id> missing "
            "from the close reason)"
        ),
        EVENTS,
        'resume = f"; resume with after={self.cursor}".encode()',
        'resume = b""',
        caught_by="tests/test_concurrency.py::test_a_subscriber_closed_as_too_slow_resumes_after_exactly_the_last_event_it_was_sent",
    ),
    Mutation(
        "handlers-replay-header-missing",
        (
            "a replayed idempotent create no longer carries Idempotent-Replayed: true, so clients cannot tell a "
            "replay from a new item"
        ),
        HANDLERS,
        (
            "    if created:\n        request.app[HUB].wake()\n"
            '    else:\n        headers["Idempotent-Replayed"] = "true"\n'
        ),
        "    if created:\n        request.app[HUB].wake()\n",
        caught_by="tests/test_idempotency.py::test_a_retry_gets_the_item_its_key_created_and_nothing_is_stored_twice",
    ),
    Mutation(
        "handlers-list-limit-reports-count",
        (
            "GET /items reports the number of items returned as 'limit' instead of the page size used, so a "
            "short last page reports the wrong limit"
        ),
        HANDLERS,
        '"limit": limit, "offset": offset}',
        '"limit": len(items), "offset": offset}',
        caught_by="tests/test_api_contract.py::test_pages_list_items_oldest_first_each_once",
    ),
    Mutation(
        "handlers-410-off-by-one",
        "GET /events?after=<head-10000> is refused 410 although every event after it is still kept (<= instead of <)",
        HANDLERS,
        "after < hub.head - EVENT_RETENTION:",
        "after <= hub.head - EVENT_RETENTION:",
        caught_by="tests/test_api_contract.py::test_resuming_from_before_the_kept_events_gets_410",
    ),
    Mutation(
        "handlers-413-plain-text",
        "a body over MAX_BODY_BYTES gets aiohttp's plain-text 413 instead of the JSON error body clients parse",
        HANDLERS,
        (
            "    except web.HTTPRequestEntityTooLarge:\n        limit = settings.max_body_bytes\n        raise "
            'json_error(\n            web.HTTPRequestEntityTooLarge, "too_large", f"the body exceeds {limit} '
            'bytes", max_size=limit\n        ) from None\n'
        ),
        "",
        caught_by="tests/test_api_contract.py::test_oversized_body_gets_413",
    ),
    Mutation(
        "handlers-408-keeps-connection",
        (
            "after a 408 body timeout (or malformed encoding) the connection is kept open, so the rest of the "
            "slow body is parsed as the next request"
        ),
        HANDLERS,
        "    request.content.feed_eof()\n    refusal.force_close()\n",
        "    request.content.feed_eof()\n",
        caught_by="tests/test_api_contract.py::test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closed",
    ),
    Mutation(
        "handlers-upstream-request-id-dropped",
        "GET /upstream no longer sends the request's X-Request-ID on to the upstream service",
        HANDLERS,
        "max_bytes=limit, request_id=identifier)",
        "max_bytes=limit)",
        caught_by="tests/test_logs.py::test_a_clients_request_id_is_kept_if_sane_and_goes_upstream",
    ),
    Mutation(
        "handlers-ready-ping-not-awaited",
        (
            "/ready forgets to await the store's ping: it answers 200 while the database is down (and leaks an "
            "un-awaited coroutine)"
        ),
        HANDLERS,
        "    await request.app[STORE].ping()\n",
        "    request.app[STORE].ping()\n",
        databases=SQL,
        caught_by="tests/test_api_contract.py::test_every_503_says_when_to_retry",
    ),
    Mutation(
        "items-name-length-before-strip",
        (
            "the name length is checked before stripping: a name of only spaces is stored as an empty name, and "
            "a 200-char name with padding is refused"
        ),
        ITEMS,
        "if not 1 <= len(name) <= NAME_MAX_LENGTH:",
        "if not 1 <= len(value) <= NAME_MAX_LENGTH:",
        caught_by="tests/test_api_contract.py::test_bad_bodies_get_400",
    ),
    Mutation(
        "items-digest-ignores-quantity",
        (
            "an Idempotency-Key reused with the same name but another quantity is replayed (201, wrong "
            "quantity) instead of 422 idempotency_key_reused"
        ),
        ITEMS,
        "json.dumps([self.name, self.quantity])",
        "json.dumps([self.name])",
        caught_by="tests/test_idempotency.py::test_another_item_under_a_used_key_gets_422",
    ),
    Mutation(
        "items-idempotency-key-255-refused",
        "an Idempotency-Key of exactly 255 characters (the documented maximum) is refused with 400",
        ITEMS,
        "[\\x21-\\x7e]{1,255}",
        "[\\x21-\\x7e]{1,254}",
        caught_by="tests/test_idempotency.py::test_key_bounds_are_inclusive",
    ),
    Mutation(
        "items-after-always-parsed",
        (
            "a websocket subscriber without ?after= is treated as after=0: it gets the whole stored history "
            "replayed (or 410 once over 10,000 events)"
        ),
        ITEMS,
        ' if "after" in query else None',
        "",
        caught_by="tests/test_api_contract.py::test_a_new_subscriber_gets_new_events_only_not_the_history",
    ),
    Mutation(
        "settings-port-65535-refused",
        "PORT=65535, a valid port, is refused at start-up (upper bound off by one)",
        "src/{package}/settings.py",
        "setting(8080, Number(int, 1, 65535),",
        "setting(8080, Number(int, 1, 65534),",
        caught_by="tests/test_configuration.py::test_a_bad_value_is_refused_with_its_variable_and_the_rule",
    ),
    Mutation(
        "settings-database-timeout-zero-accepted",
        (
            "a timeout of 0 s is accepted instead of refused: DATABASE_TIMEOUT=0 fails every SQLite write at once, "
            "and PostgreSQL's statement_timeout 0 means no limit"
        ),
        "src/{package}/settings.py",
        "SECONDS = Number(float, 0.001, 600)",
        "SECONDS = Number(float, 0, 600)",
        caught_by="tests/test_configuration.py::test_a_number_one_past_its_bounds_zero_or_negative_is_refused_saying_its_rule",
    ),
    Mutation(
        "settings-error-no-variable-name",
        "a non-numeric setting (e.g. PORT=abc) stops the service with a line that no longer names the variable",
        "src/{package}/settings.py",
        'raise SettingsError(f"{name} must be {rule.allowed}, got {text!r}") from None',
        'raise SettingsError(f"must be {rule.allowed}, got {text!r}") from None',
        caught_by="tests/test_configuration.py::test_every_variable_in_the_readme_is_read_into_its_own_setting_and_no_other",
    ),
    Mutation(
        "sqlite-busy-timeout-seconds",
        (
            "busy_timeout is set in seconds instead of milliseconds: a write meets 'database is locked' after 5 "
            "ms instead of waiting DATABASE_TIMEOUT"
        ),
        "src/{package}/store_sqlite.py",
        "busy_timeout = round(lock_timeout * 1000)",
        "busy_timeout = round(lock_timeout)",
        databases=("sqlite",),
        caught_by="tests/test_faults_sqlite.py::test_a_connection_waits_out_a_lock_for_its_timeout_in_wal_mode",
    ),
    Mutation(
        "sqlite-migration-version-recorded-last",
        (
            "the version row is written after the migration's SQL: a worker that waited for another's migration "
            "re-runs it ('table already exists') and cannot start (gunicorn with 2 workers)"
        ),
        "src/{package}/store_sqlite.py",
        'f"BEGIN IMMEDIATE;\\n{recorded}\\n{migration.sql}\\nCOMMIT;"',
        'f"BEGIN IMMEDIATE;\\n{migration.sql}\\n{recorded}\\nCOMMIT;"',
        databases=("sqlite",),
        caught_by="tests/test_faults_sqlite.py::test_workers_starting_together_apply_each_migration_once",
    ),
    Mutation(
        "sqlite-write-turn-not-released-on-error",
        (
            "a write that fails (locked file) never releases the write turn: every later write answers 503 and "
            "the service does not recover"
        ),
        "src/{package}/store_sqlite.py",
        "        try:\n            yield\n        finally:\n            self._writing.release()",
        "        yield\n        self._writing.release()",
        databases=("sqlite",),
        caught_by="tests/test_faults_sqlite.py::test_locked_file_gives_503_and_the_service_recovers_without_a_restart",
    ),
    Mutation(
        "sqlite-key-ttl-never-expires",
        (
            "idempotency keys' expiry is computed in milliseconds: keys are never forgotten after 24 h, so a "
            "reused old key is replayed/422 instead of creating a new item, and none are pruned"
        ),
        "src/{package}/store_sqlite.py",
        "now, now - IDEMPOTENCY_KEY_TTL)",
        "now, now - IDEMPOTENCY_KEY_TTL * 1000)",
        databases=("sqlite",),
        caught_by="tests/test_idempotency.py::test_a_key_is_forgotten_after_its_time_and_then_creates_a_new_item",
    ),
    Mutation(
        "sqlite-list-newest-first",
        "GET /items lists newest first instead of oldest first, so pagination order is reversed",
        "src/{package}/store_sqlite.py",
        "ORDER BY id LIMIT ? OFFSET ?",
        "ORDER BY id DESC LIMIT ? OFFSET ?",
        databases=("sqlite",),
        caught_by="tests/test_api_contract.py::test_list_pages_with_limit_and_offset",
    ),
    Mutation(
        "sqlite-ping-no-write-lock",
        (
            "/ready only runs a read: it answers 200 while another process holds the file's write lock and "
            "every write is failing"
        ),
        "src/{package}/store_sqlite.py",
        "await self._fetch(WRITE_PROBE, ())",
        'await self._fetch("SELECT 1", ())',
        databases=("sqlite",),
        caught_by="tests/test_faults_sqlite.py::test_locked_file_gives_503_and_the_service_recovers_without_a_restart",
    ),
    Mutation(
        "pg-pool-acquire-no-timeout",
        (
            "a statement waiting for a connection gets no timer: with every connection out and the server hung, "
            "requests wait forever instead of a 503 'no connection within'"
        ),
        LENDER,
        "        if self._timer is None:\n            self._timer = loop.call_at(wait[0], self._expire)\n",
        "",
        databases=("postgresql",),
        caught_by=POOL + "test_each_wait_for_a_connection_ends_at_its_own_deadline",
    ),
    Mutation(
        "pg-wait-timer-not-armed-again",
        (
            "the one timer of the waits for a connection is not armed again for the oldest left: a statement "
            "that came later than the first to time out waits until another comes, or forever"
        ),
        LENDER,
        "                self._timer = loop.call_at(deadline, self._expire)\n                return",
        "                return",
        databases=("postgresql",),
        caught_by=POOL + "test_each_wait_for_a_connection_ends_at_its_own_deadline",
    ),
    Mutation(
        "pg-migrate-no-advisory-lock",
        (
            "migrations take no advisory lock: two workers or replicas starting together both apply them, and "
            "one fails to start"
        ),
        "src/{package}/store_postgresql.py",
        '            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)\n',
        "",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_workers_starting_together_apply_each_migration_once",
        heavy=True,
    ),
    Mutation(
        "pg-add-once-expiry-inverted",
        (
            "an Idempotency-Key still in use is taken over as if expired: a retry creates a second item instead "
            "of replaying the first"
        ),
        "src/{package}/store_postgresql.py",
        "WHERE used.created_at <= now() - make_interval(secs => $5)",
        "WHERE used.created_at >= now() - make_interval(secs => $5)",
        databases=("postgresql",),
        caught_by="tests/test_api_contract.py::test_every_error_is_json",
    ),
    Mutation(
        "pg-events-numbered-in-insert-order",
        (
            "PostgreSQL events keep the ids their inserts drew: an event committed late gets an id below those "
            "already delivered, and subscribers past it never get it"
        ),
        "src/{package}/migrations/postgresql/0004_number_events_after_commit.sql",
        "SELECT newest + row_number() OVER (ORDER BY id), type",
        "SELECT id, type",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_a_transaction_left_open_holds_back_only_its_own_event",
    ),
    Mutation(
        "pg-events-never-swept",
        (
            "a process numbers events only after its own writes: an event committed by hand, or by a process killed "
            "right after its write, waits for the next write"
        ),
        "src/{package}/store_postgresql.py",
        "            self._unnumbered = True\n            wake()\n",
        "            wake()\n",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_a_transaction_left_open_holds_back_only_its_own_event",
    ),
    Mutation(
        "pg-newest-id-ignores-numbering-under-way",
        (
            "the newest event id, asked for while a numbering that began after a write is under way, answers from "
            "before it: a client resuming after that id is sent the write's event again"
        ),
        "src/{package}/store_postgresql.py",
        "            await asyncio.wait([under_way])\n"
        "            if under_way.result():\n                return None\n",
        "            return None\n",
        databases=("postgresql",),
        caught_by=(
            "tests/test_faults_postgresql.py::"
            "test_the_newest_event_id_counts_a_write_that_a_numbering_under_way_numbers"
        ),
    ),
    Mutation(
        "sqlite-grouped-creates-mismatched",
        "creates sharing one INSERT get each other's rows: the returned rows are matched to them in reverse order",
        "src/{package}/store_sqlite.py",
        "sorted(rows, key=lambda row: int(row[0]))",
        "sorted(rows, key=lambda row: int(row[0]), reverse=True)",
        databases=("sqlite",),
        caught_by="tests/test_concurrency.py::test_creates_at_once_each_get_their_own_item",
    ),
    Mutation(
        "sqlite-creates-one-at-a-time",
        "creates waiting for the same turn to write are stored one INSERT each: one trip to the thread and commit each",
        "src/{package}/store_sqlite.py",
        "self._creates[:CREATE_GROUP], self._creates[CREATE_GROUP:]",
        "self._creates[:1], self._creates[1:]",
        databases=("sqlite",),
        caught_by="tests/test_concurrency.py::test_creates_waiting_for_the_same_turn_to_write_share_one_insert",
    ),
    Mutation(
        "hub-reads-again-after-a-short-batch",
        (
            "the hub reads the store again after a read that found less than a batch: a second query per write, "
            "for nothing"
        ),
        EVENTS,
        "                    if len(events) < BATCH:  # all there was: a write from now on wakes it again\n"
        "                        break\n",
        "",
        caught_by=(
            "tests/test_concurrency.py::"
            "test_a_read_that_finds_less_than_a_batch_is_the_last_until_the_hub_is_woken_again"
        ),
    ),
    Mutation(
        "pg-listener-no-catch-up",
        (
            "a listener that (re)connects does not wake the hub: events committed while its connection was lost "
            "are not delivered until the next one"
        ),
        "src/{package}/store_postgresql.py",
        "    await connection.add_listener(EVENT_CHANNEL, lambda *_: wake())\n    wake()\n",
        "    await connection.add_listener(EVENT_CHANNEL, lambda *_: wake())\n",
        databases=("postgresql",),
        caught_by="tests/test_faults_postgresql.py::test_a_listener_whose_connection_goes_silent_reconnects_and_catches_up",
    ),
    Mutation(
        "memory-retention-drops-newest",
        (
            "in-memory event pruning deletes the oldest 10,000 instead of keeping the newest 10,000: at every "
            "1,000th event all events vanish, so live subscribers miss it and resumes fail"
        ),
        "src/{package}/store_memory.py",
        "del self._events[:-EVENT_RETENTION]",
        "del self._events[:EVENT_RETENTION]",
        databases=("none",),
        caught_by="tests/test_api_contract.py::test_the_store_keeps_the_newest_events_and_prunes_older_ones",
        heavy=True,
    ),
    Mutation(
        "memory-prune-deletes-fresh-keys",
        (
            "idempotency-key pruning compares the wrong way: each new key deletes still-valid keys, so a retry "
            "with an earlier key creates a duplicate item"
        ),
        "src/{package}/store_memory.py",
        "            if now - self.keys[old].at < IDEMPOTENCY_KEY_TTL:\n                break",
        "            if now - self.keys[old].at > IDEMPOTENCY_KEY_TTL:\n                break",
        databases=("none",),
        caught_by="tests/test_idempotency.py::test_a_key_of_every_visible_character_is_matched_exactly",
    ),
    Mutation(
        "memory-list-slice-end",
        "GET /items?offset=N&limit=M slices [offset:limit]: every page after the first is empty or short",
        "src/{package}/store_memory.py",
        "[offset : offset + limit]",
        "[offset:limit]",
        databases=("none",),
        caught_by="tests/test_api_contract.py::test_list_pages_with_limit_and_offset",
    ),
    Mutation(
        "upstream-4xx-relayed",
        "an upstream 4xx with a JSON body is relayed as a 200 status instead of a 502",
        UPSTREAM,
        "if response.status >= 400:",
        "if response.status >= 500:",
        caught_by="tests/test_api_contract.py::test_upstream_failures_get_json_5xx",
    ),
    Mutation(
        "upstream-max-bytes-off-by-one",
        (
            "an upstream answer of exactly UPSTREAM_MAX_BYTES (Content-Length) is refused with 502 although it "
            "is within the limit"
        ),
        UPSTREAM,
        "response.content_length > max_bytes",
        "response.content_length >= max_bytes",
        caught_by="tests/test_api_contract.py::test_an_upstream_answer_over_its_limit_gets_502_and_one_at_it_is_relayed",
    ),
    Mutation(
        "upstream-timeout-connect-only",
        (
            "UPSTREAM_TIMEOUT only bounds connecting: an upstream that accepts but never answers hangs GET "
            "/upstream instead of a 504"
        ),
        UPSTREAM,
        "aiohttp.ClientTimeout(total=app[SETTINGS].upstream_timeout)",
        "aiohttp.ClientTimeout(sock_connect=app[SETTINGS].upstream_timeout)",
        caught_by="tests/test_api_contract.py::test_every_error_is_json",
    ),
    Mutation(
        "errors-retry-after-missing",
        "a database failure's 503 no longer carries Retry-After: 1",
        ERRORS,
        'str(error), headers={"Retry-After": "1"}',
        "str(error)",
        databases=SQL,
        caught_by="tests/test_api_contract.py::test_every_503_says_when_to_retry",
    ),
    Mutation(
        "errors-upstream-timeout-502",
        "an upstream timeout is answered 502 instead of the documented 504",
        ERRORS,
        'return json_error(web.HTTPGatewayTimeout, "upstream_timeout", str(error))',
        'return json_error(web.HTTPBadGateway, "upstream_timeout", str(error))',
        caught_by="tests/test_api_contract.py::test_every_error_is_json",
    ),
    Mutation(
        "handlers-request-id-made-again",
        (
            "GET /upstream makes the request id again instead of taking the one it kept on the request: for a "
            "request without X-Request-ID, the id sent upstream differs from the one answered and logged"
        ),
        HANDLERS,
        "max_bytes=limit, request_id=identifier)",
        "max_bytes=limit, request_id=request_id(request))",
        add_import="from .logs import request_id",
        caught_by="tests/test_logs.py::test_a_clients_request_id_is_kept_if_sane_and_goes_upstream",
    ),
    Mutation(
        "logs-access-enabled-at-debug-only",
        (
            "the access logger reports itself enabled only at DEBUG: with the default LOG_LEVEL=INFO no access "
            "lines are written"
        ),
        "src/{package}/logs.py",
        "return self.logger.isEnabledFor(logging.INFO)",
        "return self.logger.isEnabledFor(logging.DEBUG)",
        caught_by="tests/test_configuration.py::test_under_gunicorn_the_access_line_is_the_services_unless_access_log_is_off",
    ),
    Mutation(
        "logs-access-path-backslash-unescaped",
        "a path holding a backslash but no quote goes into the access line unescaped: `\\x22` in it forges a quote",
        "src/{package}/logs.py",
        """escaped(path) if '"' in path or "\\\\" in path else path""",
        """escaped(path) if '"' in path else path""",
        caught_by="tests/test_logs.py::test_an_access_line_shows_the_path_sent_without_letting_it_forge_a_field",
    ),
    Mutation(
        "logs-access-path-without-query",
        "the access line logs the path without its query string instead of the path as sent",
        "src/{package}/logs.py",
        "    path = request.raw_path\n",
        "    path = request.path\n",
        caught_by="tests/test_configuration.py::test_every_json_line_parses_and_carries_its_fields",
    ),
    Mutation(
        "logs-access-lines-ahead-of-their-batch",
        (
            "access lines, made as their batch is written, go ahead of the batch's other lines: a warning logged "
            "before a request's answer appears after its access line"
        ),
        "src/{package}/logs.py",
        "lines.append(access_line(access_fields(remote, request, response, time), stamp))",
        "lines.insert(0, access_line(access_fields(remote, request, response, time), stamp))",
        caught_by=(
            "tests/test_log_writing.py::"
            "test_an_access_line_made_as_its_batch_is_written_keeps_its_place_among_the_other_lines"
        ),
    ),
    Mutation(
        "logs-json-duration-unrounded",
        "a JSON access line carries its milliseconds as measured (12.3456) while its message writes 12.35",
        "src/{package}/logs.py",
        'entry["duration_ms"] = round(fields[5], 2)',
        'entry["duration_ms"] = fields[5]',
        caught_by=(
            "tests/test_log_writing.py::test_a_json_access_line_gives_its_milliseconds_to_2_places_as_its_message_does"
        ),
    ),
    Mutation(
        "logs-access-peer-kept-for-every-connection",
        "the peer found at the first connection's first answer is kept on the class, and logged for every connection",
        "src/{package}/logs.py",
        "        if self.remote is None:  # the first answer, or a connection whose peer is not known\n"
        "            self.remote = request.remote\n",
        "        if not hasattr(AccessLogger, 'first_peer'):\n"
        "            AccessLogger.first_peer = request.remote\n"
        "        self.remote = AccessLogger.first_peer\n",
        caught_by="tests/test_log_writing.py::test_the_access_lines_of_each_connection_name_its_own_peer",
    ),
    Mutation(
        "logs-later-batches-never-scheduled",
        (
            "the flag saying a flush is scheduled is never cleared: after the first loop iteration's lines, the "
            "next ones wait for a thread's line or the stop"
        ),
        "src/{package}/batched_stream.py",
        "            self.scheduled = False  # cleared before the lines are taken: one appended after that schedules a "
        "flush\n",
        "",
        caught_by=(
            "tests/test_log_writing.py::test_the_lines_of_one_loop_iteration_are_written_together_before_the_next"
        ),
    ),
    Mutation(
        "main-access-log-none-dropped",
        (
            "python -m no longer passes access_log=None to run_app: with ACCESS_LOG=off aiohttp's default "
            "access log still writes a line per request"
        ),
        "src/{package}/__main__.py",
        "            access_log=None,\n",
        "",
        caught_by="tests/test_process.py::test_access_log_off_leaves_the_start_and_stop_lines",
        heavy=True,
    ),
    Mutation(
        "main-database-unavailable-traceback",
        (
            "a database that cannot be opened at start-up ends the process with a traceback instead of one "
            "'cannot start' line"
        ),
        "src/{package}/__main__.py",
        "except (StoreUnavailable, OSError) as error:",
        "except OSError as error:",
        databases=SQL,
        caught_by="tests/test_process.py::test_bad_configuration_stops_with_one_line",
        heavy=True,
    ),
    Mutation(
        "app-shutdown-hub-not-registered",
        (
            "on SIGTERM websockets are not closed with 'server shutdown' and a resume id; shutdown waits for "
            "them until its timeout"
        ),
        "src/{package}/app.py",
        "    app.on_shutdown.append(shutdown_hub)\n",
        "",
        caught_by="tests/test_p06_cancellation.py::test_stopping_the_server_tells_connected_subscribers_where_to_resume",
    ),
    Mutation(
        "app-gunicorn-skips-logging-setup",
        (
            "the gunicorn entry point skips configure_logging: LOG_FORMAT=json and LOG_LEVEL are ignored under "
            "gunicorn (python -m still applies them)"
        ),
        "src/{package}/app.py",
        "    configure_logging(settings)\n    raise_open_files_limit()\n    app = create_app(settings)",
        "    raise_open_files_limit()\n    app = create_app(settings)",
        caught_by="tests/test_configuration.py::test_under_gunicorn_the_access_line_is_the_services_unless_access_log_is_off",
    ),
    Mutation(
        "app-keepalive-timeout-ignored",
        (
            "KEEPALIVE_TIMEOUT is no longer passed to the server: idle or slow-header connections are kept for "
            "aiohttp's default whatever the setting"
        ),
        "src/{package}/app.py",
        'handler_args = {**access_log(settings), "keepalive_timeout": settings.keepalive_timeout}',
        "handler_args = access_log(settings)",
        caught_by="tests/test_api_contract.py::test_headers_that_do_not_arrive_in_time_get_the_connection_closed",
    ),
    Mutation(
        "migrations-not-sorted",
        (
            "migrations are applied in directory-listing order instead of by version number, so a later file "
            "can run before the table it needs"
        ),
        "src/{package}/migrations.py",
        "return sorted(found, key=lambda migration: migration.version)",
        "return found",
        databases=SQL,
        caught_by="tests/test_migrations.py::test_migrations_come_in_version_order_whatever_the_listing",
    ),
    Mutation(
        "app-start-objects-left-to-the-collector",
        (
            "the app and the modules stay in the collector's sight: under load each full collection walks tens "
            "of thousands of objects while every request in flight waits"
        ),
        "src/{package}/app.py",
        "    gc.freeze()\n",
        "    pass\n",
        caught_by="tests/test_configuration.py::test_both_ways_to_start_set_the_app_out_of_the_collectors_sight",
    ),
    Mutation(
        "young-objects-collected-every-700",
        (
            "Python 3.11's collector threshold is kept: under load the objects of the requests in flight alone cross "
            "it every hundred requests or so, and each young collection walks them all"
        ),
        "src/{package}/app.py",
        "    gc.set_threshold(max(young, YOUNG_OBJECTS_PER_COLLECTION), *older)\n",
        "",
        caught_by=(
            "tests/test_configuration.py::"
            "test_both_ways_to_start_collect_young_objects_less_often_than_python_3_11_does"
        ),
    ),
    Mutation(
        "pg-pool-resets-each-connection-given-back",
        (
            "the pool resets every connection given back (asyncpg's default: RESET ALL and the like), one more "
            "round trip per borrowing that restores nothing"
        ),
        "src/{package}/store_postgresql.py",
        "            reset=keep_session,\n",
        "",
        databases=("postgresql",),
        caught_by="tests/test_pool_postgresql.py::test_giving_a_connection_back_sends_the_server_nothing",
    ),
    Mutation(
        "pg-connections-in-the-pools-order",
        (
            "a connection given back goes to the statement that came last of those waiting: under load some wait "
            "ten times the median, as with asyncpg's own queue"
        ),
        LENDER,
        "_, turn = self._waiting.popleft()",
        "_, turn = self._waiting.pop()",
        databases=("postgresql",),
        caught_by=ARRIVAL_ORDER,
    ),
    Mutation(
        "pg-connections-back-through-the-pool",
        (
            "a connection given back while statements wait goes back to asyncpg's pool and is borrowed from it "
            "again, which costs a task and two timers each time"
        ),
        LENDER,
        "if self._waiting and reusable(connection) and self._hand((lease, connection)):",
        "if False:",
        databases=("postgresql",),
        caught_by=ARRIVAL_ORDER,
    ),
    Mutation(
        "pg-lost-connection-handed-on",
        (
            "a connection that was lost is handed to the next statement waiting, which then fails for nothing it "
            "did, instead of getting one anew from the pool"
        ),
        LENDER,
        "        return not connection.is_closed()\n",
        "        return True\n",
        databases=("postgresql",),
        caught_by=SECOND_POOL_TIMEOUT,
    ),
    Mutation(
        "pg-ended-session-breaks-the-hand-on",
        (
            "whether a connection can be handed on is asked of a proxy asyncpg's pool already took it back from, "
            "after the server ended its session: the request answers 500, and the one waiting gets nothing"
        ),
        LENDER,
        "except asyncpg.InterfaceError:  # it closed",
        "except asyncpg.PostgresError:  # it closed",
        databases=("postgresql",),
        caught_by=POOL + "test_a_connection_whose_session_ended_is_not_handed_on_and_the_next_statement_gets_a_new_one",
    ),
    Mutation(
        "pg-give-back-failure-raised",
        (
            "a connection that breaks as it is given back (asyncpg closes one at its query limit then) turns the "
            "statement's answer, already in hand, into a 500"
        ),
        LENDER,
        "        except CONNECTION_ERRORS as error:  # the statement's answer is in hand",
        "        except asyncpg.PostgresError as error:  # the statement's answer is in hand",
        databases=("postgresql",),
        caught_by=POOL + "test_a_connection_that_breaks_as_it_is_given_back_leaves_the_answer_and_the_place",
    ),
    Mutation(
        "pg-connection-after-a-turn-gets-a-second-timeout",
        (
            "a statement that waited for its turn gets a fresh pool timeout to make its connection: with a server "
            "lost, its 503 comes after up to twice DATABASE_POOL_TIMEOUT, not the once the README promises"
        ),
        LENDER,
        "await self._open(wait[0])",
        "await self._open(None)",
        databases=("postgresql",),
        caught_by=SECOND_POOL_TIMEOUT,
    ),
    Mutation(
        "pg-pool-timeout-told-from-settings",
        (
            "the 503 for a statement that got no connection names DATABASE_POOL_TIMEOUT from the settings, not the "
            "timeout its lender applied: a store given another lender tells the wrong figure"
        ),
        "src/{package}/store_postgresql.py",
        "raise no_connection(self._lender.timeout)",
        "raise no_connection(Settings().database_pool_timeout)",
        databases=("postgresql",),
        caught_by=SECOND_POOL_TIMEOUT,
    ),
    Mutation(
        "limits-raised-on-macos-only",
        (
            "the open-files soft limit is raised only on macOS: on Linux a few hundred idle connections exhaust "
            "a low soft limit and /health stops answering"
        ),
        "src/{package}/limits.py",
        'if sys.platform != "win32":',
        'if sys.platform == "darwin":',
        caught_by="tests/test_configuration.py::test_both_ways_to_start_raise_the_open_files_limit",
    ),
    Mutation(
        "events-ping-non-object-crash",
        (
            "a websocket text frame holding a JSON array, string or number crashes the handler (AttributeError) "
            "instead of getting a bad_message error reply"
        ),
        EVENTS,
        'if data == {"type": "ping"}:',
        'if data is not None and data.get("type") == "ping":',
        caught_by="tests/test_p11_websocket.py::test_bad_frames_get_an_error_message_not_a_disconnect",
    ),
]
