CREATE TABLE items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    quantity integer NOT NULL CHECK (quantity >= 0)
);
