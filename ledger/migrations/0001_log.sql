-- xgate ledger on PostgreSQL, schema version 1: one transparency log and
-- its owner's small state, appended to by any number of processes.
--
-- Every read is a point lookup: one key, or the chunks of one bundle or
-- tile (a short range of one index), or a short key range of xgate_state. The
-- one row of xgate_tree is the log's lock: a writer takes it with
-- SELECT ... FOR UPDATE and holds it for one batch, whose rows all commit
-- in that one transaction.

-- The tree's state: which log this is, how large, and its checkpoints.
CREATE TABLE xgate_tree (
    -- Always true: the table has at most one row.
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- The log's origin and its checkpoints' verifier key (C2SP signed-note
    -- text): a replica with another key is refused.
    origin      text NOT NULL,
    vkey        text NOT NULL,
    -- Entries in the log.
    size        bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    -- Batches committed (the last xgate_changes.seq).
    seq         bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    -- The newest checkpoint signed, and its size.
    latest_note text,
    latest_size bigint,
    -- What a witnessed log serves as its checkpoint (publish_cosigned).
    served_note text,
    served_size bigint,
    -- The newest row of xgate_checkpoints, and when it was added.
    noted_size  bigint,
    noted_at    timestamptz
);

-- Entry bundles (C2SP tlog-tiles): entries idx*256 .. idx*256+256, each a
-- big-endian uint16 length and its bytes. A bundle is written a chunk per
-- batch (entries first .. first+entries of it), so a batch writes only
-- its own entries, never the bundle again; the batch that fills a bundle
-- merges its chunks into one row (first = 0, entries = 256). A bundle's
-- bytes are its chunks in order.
CREATE TABLE xgate_bundles (
    idx     bigint NOT NULL CHECK (idx >= 0),
    first   smallint NOT NULL CHECK (first BETWEEN 0 AND 255),
    entries smallint NOT NULL CHECK (entries BETWEEN 1 AND 256 AND first + entries <= 256),
    data    bytea NOT NULL,
    PRIMARY KEY (idx, first)
);

-- Tiles (C2SP tlog-tiles, height 8): the hashes of tree level 8*level,
-- nodes idx*256 .., 32 bytes each; written in chunks as bundles are (hashes
-- first .. of the tile), merged into one row when the tile is full.
CREATE TABLE xgate_tiles (
    level  smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx    bigint NOT NULL CHECK (idx >= 0),
    first  smallint NOT NULL CHECK (first BETWEEN 0 AND 255),
    hashes bytea NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192
                                 AND octet_length(hashes) % 32 = 0
                                 AND 32 * first + octet_length(hashes) <= 8192),
    PRIMARY KEY (level, idx, first)
);

-- Every published checkpoint, by size.
CREATE TABLE xgate_checkpoints (
    size bigint PRIMARY KEY CHECK (size >= 0),
    note text NOT NULL,
    at   timestamptz NOT NULL DEFAULT statement_timestamp()
);

-- The owner's small state: an ordered map of bytes to bytes.
CREATE TABLE xgate_state (
    key   bytea PRIMARY KEY,
    value bytea NOT NULL
);

-- Bodies: kept until dropped (kept = false) or for good (kept = true).
CREATE TABLE xgate_bodies (
    key  bytea NOT NULL,
    kept boolean NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (key, kept)
);

-- The change feed: the keys of xgate_state each batch put (true) or
-- deleted (false), so that the other writers bring their caches up to
-- date. Pruned after a while: a writer that finds its place pruned reads
-- everything again.
CREATE TABLE xgate_changes (
    seq  bigint PRIMARY KEY,
    at   timestamptz NOT NULL DEFAULT statement_timestamp(),
    keys bytea[] NOT NULL,
    puts boolean[] NOT NULL CHECK (cardinality(puts) = cardinality(keys))
);
CREATE INDEX xgate_changes_at ON xgate_changes (at);

-- Fails the statement (and so the transaction) unless ok: how a batch's
-- statements, sent together with its COMMIT, check what they changed.
CREATE FUNCTION xgate_check(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'xgate: %', what USING ERRCODE = 'XG001';
    END IF;
    RETURN true;
END
$$;
