-- The privacy vault: erasable personal values beside their sealed commitments (DESIGN §3).
-- Unlike the sealed tables it is mutable on purpose: `trailseal erase` deletes a subject's rows.
CREATE TABLE IF NOT EXISTS vault (
    commitment text PRIMARY KEY,
    subject text NOT NULL,
    log text NOT NULL,
    salt bytea NOT NULL,
    value text NOT NULL,
    field text NOT NULL,
    token text NOT NULL
);
CREATE INDEX IF NOT EXISTS vault_by_subject ON vault (subject, log);
CREATE INDEX IF NOT EXISTS vault_by_token ON vault (token);

-- The writer role may also keep and erase vault rows.
CREATE OR REPLACE FUNCTION trailseal_grant_writer(writer name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), writer);
    EXECUTE format('GRANT SELECT, INSERT ON entries, entry_ids, checkpoints TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE (data) ON tiles TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE (size, checkpoint) ON logs TO %I', writer);
    EXECUTE format('GRANT SELECT ON trailseal_migrations TO %I', writer);
    EXECUTE format('GRANT EXECUTE ON FUNCTION trailseal_ensure_partitions(date[]) TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON vault TO %I', writer);
END $$;
REVOKE ALL ON FUNCTION trailseal_grant_writer(name) FROM PUBLIC;
