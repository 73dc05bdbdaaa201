-- Idempotency keys of send_event and send_events (API.md, "Idempotency"), scoped to a pair.
--
-- A request takes a new key with `INSERT ... ON CONFLICT DO NOTHING` (the primary key decides
-- the race between gateways), and an existing one under its row lock (`SELECT ... FOR UPDATE`).
-- While a request holds it, `status` and `body` are NULL and `lease_until` is that request's
-- deadline; once it answered, they are its final answer, kept byte for byte (bytea).
-- `event_ids` are the ids its first attempt published under: a retry after a 503 publishes
-- under them again.
--
-- `expires_at` is IDEMPOTENCY_RETENTION after the answer (or after the lease). An expired row
-- counts as absent, and each `begin` deletes a bounded number of them through its index: the
-- table needs no scheduled job.
CREATE TABLE event_processor.idempotency_keys (
    client      text COLLATE "C" NOT NULL CHECK (client ~ '^[A-Za-z0-9_-]{1,64}$'),
    event       text COLLATE "C" NOT NULL CHECK (event ~ '^[A-Za-z0-9_-]{1,64}$'),
    key         text COLLATE "C" NOT NULL,
    fingerprint bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
    event_ids   uuid[]      NOT NULL,
    status      integer     CHECK (status BETWEEN 100 AND 599),
    body        bytea,
    lease_until timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client, event, key),
    CHECK ((status IS NULL) = (body IS NULL))
);
CREATE INDEX idempotency_keys_expires_at ON event_processor.idempotency_keys (expires_at);
