-- trailseal PostgreSQL schema v1.
--
-- Applied once, in one transaction, by the OWNER role (the role that runs the first
-- `trailseal init` / PostgresStore open), under an advisory lock, and recorded in
-- trailseal_migrations. Never edit this file after release: add 0002_... instead
-- (the store refuses to open a database whose recorded checksum differs).
--
-- Roles (see docs/postgres.md):
--   owner  owns every table below; runs migrations; retention detaches/drops monthly
--          partitions of `entries`. Should not be a superuser.
--   writer the application role (sequencer/API). Granted by the owner with
--            SELECT trailseal_grant_writer('<role>');
--          It gets SELECT + INSERT on sealed tables, UPDATE of tiles.data (only to a longer
--          tile with the same prefix: trigger) and of the logs head (size may not shrink),
--          and EXECUTE on trailseal_ensure_partitions. No UPDATE/DELETE/TRUNCATE anywhere.
-- The triggers below refuse UPDATE/DELETE/TRUNCATE of sealed rows for every role, the
-- owner included; only DROP/DETACH of a whole partition (retention) bypasses them.

-- The head of each log: size and latest signed checkpoint (moves forward only).
CREATE TABLE logs (
    name       text COLLATE "C" PRIMARY KEY,
    size       bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    checkpoint text
);

-- Sealed entries: canonical bytes plus indexed columns, partitioned by month of `received`.
-- Partitions are named entries_YYYY_MM and created by trailseal_ensure_partitions().
CREATE TABLE entries (
    log      text COLLATE "C" NOT NULL,
    idx      bigint NOT NULL CHECK (idx >= 0),
    received timestamptz NOT NULL,
    time     timestamptz NOT NULL,
    id       text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    action   text COLLATE "C" NOT NULL,
    outcome  text COLLATE "C" NOT NULL,
    actor_id text COLLATE "C" NOT NULL,
    data     bytea NOT NULL
) PARTITION BY RANGE (received);

-- A unique index on a partitioned table must contain the partition key, so (log, idx)
-- uniqueness and (log, id) idempotency live in entry_ids below; this one serves lookups.
CREATE UNIQUE INDEX entries_by_index ON entries (log, idx, received);
CREATE INDEX entries_by_time ON entries (log, time);
CREATE INDEX entries_by_actor ON entries (log, actor_id, time);
CREATE INDEX entries_by_action ON entries (log, action, time);

-- Every sealed id and where it went; written in the same transaction as `entries`.
-- Not partitioned, so both keys are globally unique per log, and it outlives retention
-- (a pruned entry still proves which id it was).
CREATE TABLE entry_ids (
    log      text COLLATE "C" NOT NULL,
    id       text COLLATE "C" NOT NULL,
    idx      bigint NOT NULL,
    received timestamptz NOT NULL,
    PRIMARY KEY (log, id),
    UNIQUE (log, idx)
);

-- C2SP tlog tiles (256 hashes each); a partial tile is replaced by a longer one as it grows.
CREATE TABLE tiles (
    log   text COLLATE "C" NOT NULL,
    level integer NOT NULL CHECK (level >= 0),
    idx   bigint NOT NULL CHECK (idx >= 0),
    data  bytea NOT NULL,
    PRIMARY KEY (log, level, idx)
);

-- Every signed checkpoint (C2SP signed note), by tree size.
CREATE TABLE checkpoints (
    log     text COLLATE "C" NOT NULL,
    size    bigint NOT NULL,
    note    text NOT NULL,
    created text NOT NULL,
    PRIMARY KEY (log, size)
);

-- Immutability, enforced by the database for every role.
CREATE FUNCTION trailseal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'trailseal: % on %.% refused: sealed rows are immutable',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation',
              HINT = 'retention drops whole partitions of entries as the owner role';
END $$;

CREATE FUNCTION trailseal_tile_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.log, NEW.level, NEW.idx) IS DISTINCT FROM (OLD.log, OLD.level, OLD.idx)
       OR length(NEW.data) <= length(OLD.data)
       OR substring(NEW.data FROM 1 FOR length(OLD.data)) <> OLD.data THEN
        RAISE EXCEPTION 'trailseal: tile %/%/% may only grow: a % byte tile cannot replace % bytes '
            'unless it is longer and starts with them', OLD.log, OLD.level, OLD.idx,
            length(NEW.data), length(OLD.data)
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION trailseal_head_advances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name IS DISTINCT FROM OLD.name OR NEW.size < OLD.size THEN
        RAISE EXCEPTION 'trailseal: log % may not shrink from % to %', OLD.name, OLD.size, NEW.size
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER entries_sealed BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER entry_ids_sealed BEFORE UPDATE OR DELETE ON entry_ids
    FOR EACH ROW EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER entry_ids_no_truncate BEFORE TRUNCATE ON entry_ids
    FOR EACH STATEMENT EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER checkpoints_sealed BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER tiles_grow BEFORE UPDATE ON tiles
    FOR EACH ROW EXECUTE FUNCTION trailseal_tile_grows();
CREATE TRIGGER tiles_sealed BEFORE DELETE ON tiles
    FOR EACH ROW EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER tiles_no_truncate BEFORE TRUNCATE ON tiles
    FOR EACH STATEMENT EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER logs_advance BEFORE UPDATE ON logs
    FOR EACH ROW EXECUTE FUNCTION trailseal_head_advances();
CREATE TRIGGER logs_sealed BEFORE DELETE ON logs
    FOR EACH ROW EXECUTE FUNCTION trailseal_refuse_change();
CREATE TRIGGER logs_no_truncate BEFORE TRUNCATE ON logs
    FOR EACH STATEMENT EXECUTE FUNCTION trailseal_refuse_change();

-- Monthly partitions of entries, created on demand (the writer calls this before a commit
-- that touches a new month). SECURITY DEFINER: the writer role may create partitions only
-- through it; they belong to the owner. The advisory lock serializes concurrent creators.
CREATE FUNCTION trailseal_ensure_partitions(months date[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    m date;
    part text;
BEGIN
    FOREACH m IN ARRAY months LOOP
        m := date_trunc('month', m)::date;
        part := 'entries_' || to_char(m, 'YYYY_MM');
        CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
        PERFORM pg_advisory_xact_lock(hashtext('trailseal.partitions'));
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF entries FOR VALUES FROM (%L) TO (%L)',
                       part, to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
        EXECUTE format('CREATE OR REPLACE TRIGGER entries_no_truncate BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION trailseal_refuse_change()', part);
    END LOOP;
END $$;

-- The application (writer) role's privileges; run by the owner, again after each migration
-- that adds tables. Partitions need no grants: the writer reaches them through `entries`.
CREATE FUNCTION trailseal_grant_writer(writer name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), writer);
    EXECUTE format('GRANT SELECT, INSERT ON entries, entry_ids, checkpoints TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE (data) ON tiles TO %I', writer);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE (size, checkpoint) ON logs TO %I', writer);
    EXECUTE format('GRANT SELECT ON trailseal_migrations TO %I', writer);
    EXECUTE format('GRANT EXECUTE ON FUNCTION trailseal_ensure_partitions(date[]) TO %I', writer);
END $$;

REVOKE ALL ON FUNCTION trailseal_ensure_partitions(date[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION trailseal_grant_writer(name) FROM PUBLIC;

-- Pin the functions' search_path to this schema (pg_temp last), as SECURITY DEFINER requires.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION trailseal_ensure_partitions(date[]) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION trailseal_grant_writer(name) SET search_path = %I, pg_temp',
                   current_schema());
END $$;
