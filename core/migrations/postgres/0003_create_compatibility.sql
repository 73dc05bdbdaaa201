-- Each pair's own compatibility mode; a pair without a row uses DEFAULT_COMPATIBILITY.
--
-- Setting a mode is an upsert on the primary key, so the last one set wins. The CHECK names the
-- seven modes of API.md: a hand-edited row with any other value is refused here instead of
-- being read back as a corrupt row.
CREATE TABLE event_processor.compatibility (
    client text COLLATE "C" NOT NULL CHECK (client ~ '^[A-Za-z0-9_-]{1,64}$'),
    event  text COLLATE "C" NOT NULL CHECK (event ~ '^[A-Za-z0-9_-]{1,64}$'),
    mode   text NOT NULL CHECK (mode IN (
        'NONE', 'BACKWARD', 'FORWARD', 'FULL',
        'BACKWARD_TRANSITIVE', 'FORWARD_TRANSITIVE', 'FULL_TRANSITIVE'
    )),
    PRIMARY KEY (client, event)
);
