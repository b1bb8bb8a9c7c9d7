-- The sync state database of ado-clickup-sync (SQLite).
--
-- Embedded in the binary (`src/store.rs`, `include_str!`). The file is a list of migrations,
-- each introduced by a line `-- migration: N` (N = 1, 2, 3, … in order). At open, the migrations
-- whose N is above the database's `PRAGMA user_version` run in one transaction that also sets
-- `user_version` to the last N, so re-running is a no-op and an older database is brought up to
-- date. Never edit a migration that has shipped: append a new one.
--
-- Conventions:
-- - every time is INTEGER milliseconds since the Unix epoch (UTC); the store never reads a clock,
--   callers pass `now`;
-- - sides are 'ado' | 'clickup'; ADO ids are INTEGER, ClickUp ids TEXT; an item id whose side
--   varies (intents, retries, audit) is TEXT (the ADO id in decimal);
-- - JSON columns hold serde_json text;
-- - nothing secret is stored here (no tokens, no config dump): keep it that way.

-- migration: 1

-- One ADO work item <-> one ClickUp task, within a configured pair. Links are never deleted:
-- a link whose counterpart went away is marked 'unlinked' (with a reason) and kept for history.
CREATE TABLE links (
    id            INTEGER PRIMARY KEY,
    pair          TEXT    NOT NULL,
    ado_id        INTEGER NOT NULL,
    clickup_id    TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'unlinked')),
    unlink_reason TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK ((state = 'unlinked') = (unlink_reason IS NOT NULL))
);
-- The last line of defence against duplicates: at most one active link per item on each side.
-- The cycle's lookups by ADO id / ClickUp id (which only want active links) use these indexes.
CREATE UNIQUE INDEX links_active_ado     ON links (pair, ado_id)     WHERE state = 'active';
CREATE UNIQUE INDEX links_active_clickup ON links (pair, clickup_id) WHERE state = 'active';
-- No (pair, state) index: without ANALYZE statistics the planner would prefer it for the batch
-- lookups (pair = ? AND state = 'active' AND ado_id IN …) and scan a whole pair. Counting active
-- links per pair uses links_active_ado; the sweep may scan.

-- The base of the three-way merge: the canonical item as last written/seen on both sides.
CREATE TABLE snapshots (
    link_id              INTEGER PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    item_json            TEXT    NOT NULL,
    ado_rev              INTEGER NOT NULL,
    clickup_date_updated INTEGER NOT NULL,
    synced_at            INTEGER NOT NULL
);

-- Per pair and side: the server-time watermark (ms) up to which changes have been applied.
CREATE TABLE cursors (
    pair         TEXT    NOT NULL,
    side         TEXT    NOT NULL CHECK (side IN ('ado', 'clickup')),
    watermark_ms INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (pair, side)
) WITHOUT ROWID;

-- A create is written here before it is sent, so that a crash between the remote create and the
-- link record is recovered by searching the target for the back-link marker instead of creating
-- again.
CREATE TABLE intents (
    id           INTEGER PRIMARY KEY,
    pair         TEXT    NOT NULL,
    source_side  TEXT    NOT NULL CHECK (source_side IN ('ado', 'clickup')),
    source_id    TEXT    NOT NULL,
    target_side  TEXT    NOT NULL CHECK (target_side IN ('ado', 'clickup')),
    planned_json TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'done', 'abandoned')),
    result_id    TEXT,
    closed_at    INTEGER,
    note         TEXT,
    CHECK (source_side <> target_side),
    CHECK ((status = 'pending') = (closed_at IS NULL)),
    CHECK (status <> 'done' OR result_id IS NOT NULL)
);
-- At most one pending create per source item: a second create of the same item is refused.
CREATE UNIQUE INDEX intents_pending_source
    ON intents (pair, source_side, source_id) WHERE status = 'pending';
-- Recovery lists the pending intents, oldest first, at the start of every cycle; done ones pile
-- up, so this must not scan the table.
CREATE INDEX intents_pending ON intents (id) WHERE status = 'pending';

-- Items that failed, with their backoff schedule. One row per item; cleared on success.
CREATE TABLE retries (
    pair            TEXT    NOT NULL,
    side            TEXT    NOT NULL CHECK (side IN ('ado', 'clickup')),
    item_id         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL CHECK (attempts >= 1),
    first_failed_at INTEGER NOT NULL,
    last_failed_at  INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT    NOT NULL,
    PRIMARY KEY (pair, side, item_id)
) WITHOUT ROWID;
CREATE INDEX retries_due ON retries (pair, next_attempt_at);

-- Same field edited differently on both sides (and the policy said to keep it for a human, or to
-- record which side won). Values are the canonical field values as JSON.
CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    link_id      INTEGER NOT NULL REFERENCES links (id),
    field        TEXT    NOT NULL,
    base_json    TEXT    NOT NULL,
    ado_json     TEXT    NOT NULL,
    clickup_json TEXT    NOT NULL,
    detected_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    resolution   TEXT,
    -- When the engine has written the resolution's value to the other side.
    applied_at   INTEGER,
    CHECK ((resolved_at IS NULL) = (resolution IS NULL)),
    CHECK (applied_at IS NULL OR resolved_at IS NOT NULL)
);
-- One open conflict per link and field: a re-detection updates it instead of adding a row.
CREATE UNIQUE INDEX conflicts_open ON conflicts (link_id, field) WHERE resolved_at IS NULL;
CREATE INDEX conflicts_link ON conflicts (link_id);
CREATE INDEX conflicts_unapplied ON conflicts (resolved_at)
    WHERE resolved_at IS NOT NULL AND applied_at IS NULL;

-- One row per sync cycle (or sweep). A row with no ended_at is a cycle that was interrupted.
CREATE TABLE cycles (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('incremental', 'sweep')),
    pair         TEXT,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    reads        INTEGER NOT NULL DEFAULT 0,
    writes       INTEGER NOT NULL DEFAULT 0,
    conflicts    INTEGER NOT NULL DEFAULT 0,
    errors       INTEGER NOT NULL DEFAULT 0,
    api_requests INTEGER NOT NULL DEFAULT 0,
    error        TEXT
);
CREATE INDEX cycles_ok ON cycles (kind, id) WHERE ended_at IS NOT NULL AND error IS NULL;

-- Every write to either side (and every link/unlink), with before -> after values.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    cycle_id    INTEGER REFERENCES cycles (id),
    pair        TEXT,
    link_id     INTEGER REFERENCES links (id),
    side        TEXT    CHECK (side IN ('ado', 'clickup')),
    item_id     TEXT,
    action      TEXT    NOT NULL,
    fields_json TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'skipped')),
    detail      TEXT
);
CREATE INDEX audit_link ON audit (link_id, id);
CREATE INDEX audit_at ON audit (at);

-- migration: 2

-- Each cycle closes the cycles of its pair a dead process left open: find those without
-- scanning a table that gains a row per cycle.
CREATE INDEX cycles_open ON cycles (pair) WHERE ended_at IS NULL;
