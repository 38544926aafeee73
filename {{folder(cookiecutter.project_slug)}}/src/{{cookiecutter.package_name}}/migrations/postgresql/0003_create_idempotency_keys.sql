-- Idempotency keys of POST /items: each names the item it created, so a retry gets that item instead of a
-- second one. A key and its item are written by one statement (store_postgresql.ADD_ONCE), so both are committed
-- or neither. No foreign key: a retry of a create whose item was deleted since still gets the original answer.
-- Keys expire after items.IDEMPOTENCY_KEY_TTL; each new key forgets up to items.IDEMPOTENCY_KEY_PRUNE_BATCH (100)
-- expired ones, oldest first.
CREATE TABLE idempotency_keys (
    key text PRIMARY KEY,
    digest bytea NOT NULL,  -- items.NewItem.digest() of the item the key was used for
    item_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
