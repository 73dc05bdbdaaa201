-- One row per registered schema version of a (client, event) pair.
--
-- The primary key is the unique constraint that decides registration races: of any number of
-- concurrent `INSERT ... ON CONFLICT DO NOTHING` for version 1 of a pair, across gateways,
-- exactly one inserts a row.
--
-- `schema` is the document as jsonb, for operators' queries and indexes. jsonb normalizes
-- numbers (-1.5e10 is stored as -15000000000) and key order, so the gateway serves back
-- `schema_text`, the document exactly as registered: otherwise re-registering an identical
-- schema could read back as a different JSON value and be refused with 409. The CHECK keeps
-- the two columns the same document.
--
-- `COLLATE "C"` orders names byte-wise, as every other store lists them.
CREATE TABLE event_schemas (
    client        text COLLATE "C" NOT NULL CHECK (client ~ '^[A-Za-z0-9_-]{1,64}$'),
    event         text COLLATE "C" NOT NULL CHECK (event ~ '^[A-Za-z0-9_-]{1,64}$'),
    version       integer     NOT NULL CHECK (version >= 1),
    schema        jsonb       NOT NULL,
    schema_text   text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, event, version),
    CHECK (schema_text::jsonb = schema)
);
