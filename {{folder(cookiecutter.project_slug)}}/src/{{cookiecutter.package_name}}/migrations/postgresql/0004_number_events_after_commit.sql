-- Writers no longer wait for each other: the trigger adds the event to an inbox, with no lock and no NOTIFY, and
-- number_events(), which the services call after their writes and every second, moves the inbox's committed
-- events to the events table, numbered above every event already there. One call at a time numbers, and each sees
-- the last one's numbers, so ids are committed in increasing order: a reader that has seen id N never finds a
-- smaller one later. A transaction left open holds back only its own event, which is numbered once it commits.
CREATE TABLE event_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY,  -- the order of the events numbered together; no index: it is read whole
    type text NOT NULL,
    item_id bigint NOT NULL,
    name text NOT NULL,
    quantity integer NOT NULL
);

ALTER TABLE events ALTER COLUMN id DROP IDENTITY;  -- given by number_events from now on

CREATE OR REPLACE FUNCTION record_item_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed items%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    INSERT INTO event_inbox (type, item_id, name, quantity)
        VALUES (TG_ARGV[0], changed.id, changed.name, changed.quantity);
    RETURN NULL;
END
$$;

-- Numbers the inbox's committed events and returns the newest event id. The lock comes before the statements that
-- read, and each of them sees every commit made before it started (a volatile function's statements each take a
-- new snapshot), the last caller's included.
CREATE FUNCTION number_events() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    newest bigint;
    numbered bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(6118);  -- taken by this function alone
    SELECT coalesce(max(id), 0) INTO newest FROM events;
    WITH taken AS (DELETE FROM event_inbox RETURNING *)
    INSERT INTO events (id, type, item_id, name, quantity)
        SELECT newest + row_number() OVER (ORDER BY id), type, item_id, name, quantity FROM taken;
    GET DIAGNOSTICS numbered = ROW_COUNT;
    IF numbered > 0 THEN
        PERFORM pg_notify('item_events', '');  -- delivered at commit: every service then reads the new events
        -- Retention (items.EVENT_RETENTION, EVENT_PRUNE_EVERY): each 1,000th id drops those 10,000 older.
        IF (newest + numbered) / 1000 > newest / 1000 THEN
            DELETE FROM events WHERE id <= (newest + numbered) / 1000 * 1000 - 10000;
        END IF;
    END IF;
    RETURN newest + numbered;
END
$$;
