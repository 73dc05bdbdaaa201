-- Rejected events (API.md, "Rejected events"), kept apart from the stream, one row each.
--
-- `id` is the rejection's UUID v7. PostgreSQL compares uuids byte by byte, which for v7 is
-- time order, so the primary key serves every read: a pair's page newest first, one rejection
-- by id, and the rows older than REJECTIONS_TTL (an id below the smallest v7 id of that instant).
--
-- `data` is the event as received, as UTF-8 bytes: text refuses U+0000, which an event's text may
-- contain, and bytea keeps every byte without an escaping scheme to get wrong. `errors` is the
-- validation details as JSON text in a json column, which (unlike jsonb) accepts `\u0000` and
-- keeps the text as written.
--
-- `seq` numbers a pair's rejections in the order they were kept (see `rejection_pairs`): a keep
-- deletes the rows more than MAX_REJECTIONS_PER_PAIR behind the newest through its index, in
-- time proportional to what it deletes, so a flood of invalid events stores a bounded amount.
CREATE TABLE event_processor.rejections (
    client      text COLLATE "C" NOT NULL CHECK (client ~ '^[A-Za-z0-9_-]{1,64}$'),
    event       text COLLATE "C" NOT NULL CHECK (event ~ '^[A-Za-z0-9_-]{1,64}$'),
    id          uuid        NOT NULL,
    seq         bigint      NOT NULL,
    version     bigint      CHECK (version BETWEEN 1 AND 4294967295),
    received_at timestamptz NOT NULL,
    request_id  text,
    error       text        NOT NULL,
    errors      json        NOT NULL,
    data        bytea       NOT NULL,
    truncated   boolean     NOT NULL,
    replayed    bigint      CHECK (replayed BETWEEN 1 AND 4294967295),
    PRIMARY KEY (client, event, id)
);
CREATE INDEX rejections_seq ON event_processor.rejections (client, event, seq);

-- How many rejections each pair has ever kept: the `seq` of its newest one. Every keep of the
-- pair adds to it under its row lock, so concurrent keeps number their rows apart.
CREATE TABLE event_processor.rejection_pairs (
    client text COLLATE "C" NOT NULL CHECK (client ~ '^[A-Za-z0-9_-]{1,64}$'),
    event  text COLLATE "C" NOT NULL CHECK (event ~ '^[A-Za-z0-9_-]{1,64}$'),
    kept   bigint NOT NULL CHECK (kept >= 0),
    PRIMARY KEY (client, event)
);
