//! Every statement `pg` sends, in one place: the tables are in
//! `ledger/migrations/`. Parameters are typed in the text (`$1::bytea[]`)
//! so that each statement prepares in one round trip.

/// Creates the log's row if the database has none.
pub(super) const CLAIM: &str = "INSERT INTO xgate_tree (id, origin, vkey) VALUES (true, $1, $2) \
                                ON CONFLICT (id) DO NOTHING";

/// Which log the database holds, and its batch number.
pub(super) const WHOSE: &str = "SELECT origin, vkey, seq FROM xgate_tree";

/// The tree's size and checkpoints, the notes only if they are not the
/// ones of the sizes the caller already holds.
pub(super) const HEAD: &str = "SELECT size, latest_size, \
       CASE WHEN latest_size IS DISTINCT FROM $1::bigint THEN latest_note END, \
       served_size, \
       CASE WHEN served_size IS DISTINCT FROM $2::bigint THEN served_note END \
     FROM xgate_tree";

/// Starts a batch's transaction.
pub(super) const BEGIN: &str = "BEGIN";
/// Ends it.
pub(super) const COMMIT: &str = "COMMIT";
/// Ends it, changing nothing.
pub(super) const ROLLBACK: &str = "ROLLBACK";

/// The log's lock: the tree state, held until the batch commits.
pub(super) const LOCK: &str = "SELECT size, seq, latest_size, noted_size, \
       coalesce(statement_timestamp() - noted_at >= interval '1 second', true) \
     FROM xgate_tree FOR UPDATE";

/// The change feed after batch `$1`, whole batches, as long as they hold
/// no more than `$2` keys in all.
pub(super) const FEED: &str = "SELECT seq, keys, puts FROM ( \
       SELECT seq, keys, puts, sum(cardinality(keys)) OVER (ORDER BY seq) AS total \
       FROM xgate_changes WHERE seq > $1::bigint \
     ) AS c WHERE total <= $2::bigint ORDER BY seq";

/// The stored rows of the unfinished tiles of the tree, unless its size is
/// `$1` (the writer's edge is then current): sent with the lock, so it
/// costs nothing when the writer's edge is up to date.
pub(super) const EDGE: &str = "SELECT e.level::smallint, string_agg(t.hashes, ''::bytea ORDER BY t.first) \
     FROM xgate_tree AS s \
     CROSS JOIN generate_series(0, 6) AS e(level) \
     JOIN xgate_tiles AS t ON t.level = e.level AND t.idx = s.size >> (8 * e.level + 8) \
     WHERE s.size <> $1::bigint AND (s.size >> (8 * e.level)) % 256 <> 0 \
     GROUP BY e.level";

/// Fails unless the bundles `$1` hold `$2` entries each (in all their
/// chunks) before a batch adds to them.
pub(super) const BUNDLES_CHECK: &str = "SELECT xgate_check(coalesce(bool_and(c.have = c.want), true), \
       'entry bundles do not match the tree size') \
     FROM (SELECT a.want, \
             coalesce((SELECT sum(b.entries) FROM xgate_bundles AS b WHERE b.idx = a.idx), 0) AS have \
           FROM unnest($1::bigint[], $2::integer[]) AS a(idx, want)) AS c";

/// A batch's chunk of each bundle it adds to.
pub(super) const BUNDLES: &str = "INSERT INTO xgate_bundles (idx, first, entries, data) \
     SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::smallint[], $4::bytea[])";

/// Merges the chunks of the bundles `$1`, now full, into one row each.
pub(super) const BUNDLES_FULL: &str = "WITH rest AS ( \
       DELETE FROM xgate_bundles WHERE idx = ANY($1::bigint[]) AND first > 0 \
       RETURNING idx, first, entries, data \
     ) \
     UPDATE xgate_bundles AS b \
     SET entries = b.entries + (SELECT sum(r.entries) FROM rest AS r WHERE r.idx = b.idx), \
         data = b.data || (SELECT string_agg(r.data, ''::bytea ORDER BY r.first) \
                           FROM rest AS r WHERE r.idx = b.idx) \
     WHERE b.idx = ANY($1::bigint[]) AND b.first = 0";

/// Fails unless the tiles (`$1`, `$2`) hold `$3` hashes each (in all
/// their chunks) before a batch adds to them.
pub(super) const TILES_CHECK: &str = "SELECT xgate_check(coalesce(bool_and(c.have = 32 * c.want), true), \
       'tiles do not match the tree size') \
     FROM (SELECT a.want, \
             coalesce((SELECT sum(octet_length(t.hashes)) FROM xgate_tiles AS t \
                       WHERE t.level = a.level AND t.idx = a.idx), 0) AS have \
           FROM unnest($1::smallint[], $2::bigint[], $3::integer[]) AS a(level, idx, want)) AS c";

/// A batch's chunk of each tile it adds to.
pub(super) const TILES: &str = "INSERT INTO xgate_tiles (level, idx, first, hashes) \
     SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::smallint[], $4::bytea[])";

/// Merges the chunks of the tiles (`$1`, `$2`), now full, into one row each.
pub(super) const TILES_FULL: &str = "WITH full_tiles AS ( \
       SELECT * FROM unnest($1::smallint[], $2::bigint[]) AS f(level, idx) \
     ), rest AS ( \
       DELETE FROM xgate_tiles AS t USING full_tiles AS f \
       WHERE t.level = f.level AND t.idx = f.idx AND t.first > 0 \
       RETURNING t.level, t.idx, t.first, t.hashes \
     ) \
     UPDATE xgate_tiles AS t \
     SET hashes = t.hashes || (SELECT string_agg(r.hashes, ''::bytea ORDER BY r.first) \
                               FROM rest AS r WHERE r.level = t.level AND r.idx = t.idx) \
     FROM full_tiles AS f \
     WHERE t.level = f.level AND t.idx = f.idx AND t.first = 0";

/// Sets keys of the small state.
pub(super) const STATE_PUT: &str = "INSERT INTO xgate_state (key, value) \
     SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";

/// Deletes keys of the small state.
pub(super) const STATE_DELETE: &str = "DELETE FROM xgate_state WHERE key = ANY($1::bytea[])";

/// Keeps bodies.
pub(super) const BODY_PUT: &str = "INSERT INTO xgate_bodies (key, kept, data) \
     SELECT * FROM unnest($1::bytea[], $2::boolean[], $3::bytea[]) \
     ON CONFLICT (key, kept) DO UPDATE SET data = EXCLUDED.data";

/// Drops bodies kept until dropped.
pub(super) const BODY_DROP: &str =
    "DELETE FROM xgate_bodies WHERE NOT kept AND key = ANY($1::bytea[])";

/// Records a batch's keys in the change feed.
pub(super) const CHANGE: &str =
    "INSERT INTO xgate_changes (seq, keys, puts) VALUES ($1::bigint, $2::bytea[], $3::boolean[])";

/// Forgets the change feed up to batch `$1`, and anything older than an
/// hour.
pub(super) const PRUNE: &str = "DELETE FROM xgate_changes \
     WHERE seq <= $1::bigint OR at < statement_timestamp() - interval '1 hour'";

/// Moves the tree from (`$1` entries, batch `$2`) to (`$3`, `$4`), with
/// the newest signed checkpoint (`$5`, `$6`) and the newest published
/// one's size (`$7`), each unchanged when null; fails if the tree was not
/// where the lock found it.
pub(super) const ADVANCE: &str = "WITH moved AS ( \
       UPDATE xgate_tree SET size = $3::bigint, seq = $4::bigint, \
         latest_note = coalesce($5::text, latest_note), \
         latest_size = coalesce($6::bigint, latest_size), \
         noted_size = coalesce($7::bigint, noted_size), \
         noted_at = CASE WHEN $7::bigint IS NULL THEN noted_at ELSE statement_timestamp() END \
       WHERE size = $1::bigint AND seq = $2::bigint \
       RETURNING 1 \
     ) \
     SELECT xgate_check((SELECT count(*) FROM moved) = 1, 'the tree moved under its lock')";

/// Publishes a checkpoint: adds it to the history.
pub(super) const NOTE: &str = "INSERT INTO xgate_checkpoints (size, note) \
     VALUES ($1::bigint, $2::text) ON CONFLICT (size) DO NOTHING";

/// Every published checkpoint, oldest first.
pub(super) const NOTES: &str = "SELECT size, note FROM xgate_checkpoints ORDER BY size";

/// Serves a cosigned checkpoint, never one smaller than the one served.
pub(super) const SERVE: &str = "UPDATE xgate_tree SET served_note = $1::text, served_size = $2::bigint \
     WHERE coalesce(served_size, 0) <= $2::bigint";

/// Stored tiles by (level, index): all their chunks, in order.
pub(super) const TILES_AT: &str = "SELECT t.level, t.idx, string_agg(t.hashes, ''::bytea ORDER BY t.first) \
     FROM unnest($1::smallint[], $2::bigint[]) AS k(level, idx) \
     JOIN xgate_tiles AS t ON t.level = k.level AND t.idx = k.idx \
     GROUP BY t.level, t.idx";

/// The stored hashes of one tile (null if it has none).
pub(super) const TILE: &str = "SELECT string_agg(hashes, ''::bytea ORDER BY first) \
     FROM xgate_tiles WHERE level = $1::smallint AND idx = $2::bigint";

/// One entry bundle: its entries and bytes (nulls if it has none).
pub(super) const BUNDLE: &str = "SELECT sum(entries), string_agg(data, ''::bytea ORDER BY first) \
     FROM xgate_bundles WHERE idx = $1::bigint";

/// Bundles with indices in [`$1`, `$2`): index, entries, bytes.
pub(super) const BUNDLE_RANGE: &str = "SELECT idx, sum(entries), string_agg(data, ''::bytea ORDER BY first) \
     FROM xgate_bundles WHERE idx >= $1::bigint AND idx < $2::bigint GROUP BY idx ORDER BY idx";

/// One key of the small state.
pub(super) const STATE_GET: &str = "SELECT value FROM xgate_state WHERE key = $1::bytea";

/// Several keys, with their values (those that exist).
pub(super) const STATE_GET_MANY: &str =
    "SELECT key, value FROM xgate_state WHERE key = ANY($1::bytea[])";

/// A page of keys from `$1`, below `$2`.
pub(super) const STATE_PAGE: &str = "SELECT key, value FROM xgate_state \
     WHERE key >= $1::bytea AND key < $2::bytea ORDER BY key LIMIT $3::bigint";

/// A page of keys from `$1`, to the end.
pub(super) const STATE_PAGE_OPEN: &str = "SELECT key, value FROM xgate_state \
     WHERE key >= $1::bytea ORDER BY key LIMIT $2::bigint";

/// The greatest key from `$1`, below `$2`.
pub(super) const STATE_LAST: &str = "SELECT key, value FROM xgate_state \
     WHERE key >= $1::bytea AND key < $2::bytea ORDER BY key DESC LIMIT 1";

/// The greatest key from `$1`.
pub(super) const STATE_LAST_OPEN: &str =
    "SELECT key, value FROM xgate_state WHERE key >= $1::bytea ORDER BY key DESC LIMIT 1";

/// A body, one kept until dropped first.
pub(super) const BODY: &str =
    "SELECT data FROM xgate_bodies WHERE key = $1::bytea ORDER BY kept LIMIT 1";
