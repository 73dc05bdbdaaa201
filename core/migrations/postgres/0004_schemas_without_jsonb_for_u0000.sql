-- jsonb cannot hold U+0000: PostgreSQL refuses `\u0000` in a JSON string ("unsupported Unicode
-- escape sequence"), so a schema that mentions it — valid JSON, accepted by every other store —
-- could not be registered at all, and the refusal surfaced as a 503 (issue 14). `schema_text`
-- has no such limit (serialized JSON keeps the character escaped, and is what the gateway
-- serves); `schema`, the jsonb copy for operators' queries, is NULL for just those documents.
--
-- The check still keeps the two columns the same document, and lets `schema` be NULL only when
-- the text holds the escape. CASE rather than OR: PostgreSQL does not promise to evaluate OR's
-- operands in order, and casting such a text to jsonb raises the very error avoided here.
ALTER TABLE event_processor.schemas
    ALTER COLUMN schema DROP NOT NULL,
    DROP CONSTRAINT event_schemas_check,
    ADD CONSTRAINT schemas_schema_check CHECK (
        CASE
            WHEN schema IS NULL THEN strpos(schema_text, E'\\u0000') > 0
            ELSE schema_text::jsonb = schema
        END
    );
