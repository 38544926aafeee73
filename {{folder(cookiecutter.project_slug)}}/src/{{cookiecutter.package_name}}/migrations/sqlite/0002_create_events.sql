-- The outbox: every change to an item adds its event in the same statement (a trigger runs inside the
-- statement's transaction), so an event exists exactly when its change was committed. SQLite has one writer
-- at a time, so ids grow in commit order; AUTOINCREMENT never hands out an id twice.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL
);

CREATE TRIGGER item_created AFTER INSERT ON items BEGIN
    INSERT INTO events (type, item_id, name, quantity) VALUES ('item.created', NEW.id, NEW.name, NEW.quantity);
END;

CREATE TRIGGER item_deleted AFTER DELETE ON items BEGIN
    INSERT INTO events (type, item_id, name, quantity) VALUES ('item.deleted', OLD.id, OLD.name, OLD.quantity);
END;

-- Retention (items.EVENT_RETENTION, EVENT_PRUNE_EVERY): every 1,000th event drops those 10,000 ids older.
CREATE TRIGGER events_pruned AFTER INSERT ON events WHEN NEW.id % 1000 = 0 BEGIN
    DELETE FROM events WHERE id <= NEW.id - 10000;
END;
