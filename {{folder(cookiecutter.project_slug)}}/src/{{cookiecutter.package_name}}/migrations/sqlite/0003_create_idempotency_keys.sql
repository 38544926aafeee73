-- Idempotency keys of POST /items: each names the item it created, so a retry gets that item instead of a
-- second one. No foreign key: a retry of a create whose item was deleted since still gets the original answer.
-- Keys expire after items.IDEMPOTENCY_KEY_TTL; each new key forgets up to items.IDEMPOTENCY_KEY_PRUNE_BATCH (100)
-- expired ones, oldest first.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    digest BLOB NOT NULL,  -- items.NewItem.digest() of the item the key was used for
    item_id INTEGER NOT NULL,
    created_at REAL NOT NULL  -- Unix time, in seconds
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Inserting into this view adds an item and its key in one statement, so both are committed or neither
-- (store_sqlite.ADD_ONCE). A key still in use fails the statement on its primary key, and nothing is added.
CREATE VIEW keyed_items AS
    SELECT key, digest, NULL AS name, NULL AS quantity, created_at, NULL AS expired_before FROM idempotency_keys;

CREATE TRIGGER keyed_item_added INSTEAD OF INSERT ON keyed_items BEGIN
    DELETE FROM idempotency_keys WHERE created_at <= NEW.expired_before AND (key = NEW.key OR key IN (
        SELECT key FROM idempotency_keys WHERE created_at <= NEW.expired_before ORDER BY created_at LIMIT 100
    ));
    INSERT INTO items (name, quantity) VALUES (NEW.name, NEW.quantity);
    -- last_insert_rowid(): the item's id (the rowids its event's triggers made are restored as each ends).
    INSERT INTO idempotency_keys VALUES (NEW.key, NEW.digest, last_insert_rowid(), NEW.created_at);
END;
