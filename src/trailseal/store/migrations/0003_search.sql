-- Search tables for the query language (src/trailseal/query/index_pg.py, search_pg.py).
--
-- Derived from the sealed entries and rebuilt at will, so unlike the sealed tables they are
-- mutable: the application role inserts rows as `refresh` indexes new entries and deletes them
-- when the vault erases an address or retention drops the entries they describe.

-- How far each log is indexed: every idx below `indexed` is in the tables below.
CREATE TABLE search_state (
    log     text COLLATE "C" PRIMARY KEY,
    indexed bigint NOT NULL CHECK (indexed >= 0)
);

-- Free text: an entry's words in order, one space apart, with a boundary between values (the exact
-- phrase test), and its distinct words as a GIN-indexed filter. A word longer than 100 characters
-- is cut to that length in the filter: `cut` is `doc` with such words cut, NULL when there are none.
CREATE TABLE search_text (
    log      text COLLATE "C" NOT NULL,
    idx      bigint NOT NULL,
    received timestamptz NOT NULL,
    doc      text COLLATE "C" NOT NULL,
    cut      text COLLATE "C",
    words    tsvector GENERATED ALWAYS AS
                 (array_to_tsvector(array_remove(string_to_array(coalesce(cut, doc), ' '), ''))) STORED,
    PRIMARY KEY (log, idx)
);
CREATE INDEX search_text_words ON search_text USING gin (words);

-- actor.ip and source.ip as sortable keys (version byte + packed address): a CIDR is one range.
-- A sealed (erasable) actor.ip is keyed by the vault's value and names its commitment.
CREATE TABLE search_ips (
    field      text COLLATE "C" NOT NULL,
    ip         bytea NOT NULL,
    log        text COLLATE "C" NOT NULL,
    idx        bigint NOT NULL,
    received   timestamptz NOT NULL,
    commitment text,  -- collated as vault.commitment, so the vault check uses its key
    PRIMARY KEY (field, ip, log, idx)
);
CREATE INDEX search_ips_by_commitment ON search_ips (commitment) WHERE commitment IS NOT NULL;
CREATE INDEX search_ips_by_entry ON search_ips (log, idx);

-- actor.session and request.trace_id in time order, for timelines.
CREATE TABLE search_keys (
    log      text COLLATE "C" NOT NULL,
    field    text COLLATE "C" NOT NULL,
    value    text COLLATE "C" NOT NULL,
    time     timestamptz NOT NULL,
    idx      bigint NOT NULL,
    received timestamptz NOT NULL,
    PRIMARY KEY (log, field, value, time, idx)
);
CREATE INDEX search_keys_by_entry ON search_keys (log, idx);

-- The writer role may also keep the search tables.
CREATE OR REPLACE FUNCTION trailseal_grant_writer(writer name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), writer);
    EXECUTE format('GRANT SELECT, INSERT ON entries, entry_ids, checkpoints TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE (data) ON tiles TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE (size, checkpoint) ON logs TO %I', writer);
    EXECUTE format('GRANT SELECT ON trailseal_migrations TO %I', writer);
    EXECUTE format('GRANT EXECUTE ON FUNCTION trailseal_ensure_partitions(date[]) TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON vault TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON search_state, search_text, search_ips, search_keys TO %I',
                   writer);
END $$;
REVOKE ALL ON FUNCTION trailseal_grant_writer(name) FROM PUBLIC;
