//! The database schema, as numbered migrations applied in order, each once, inside a
//! transaction; `schema_migrations` records which ran. The same SQL serves SQLite and
//! PostgreSQL but for the auto-increment key, written `{serial}`.

/// `(version, what it does, SQL statements)`.
pub const MIGRATIONS: &[(i64, &str, &[&str])] = &[
    (
        1,
        "events, alert outbox, viewer minutes",
        &[
            "CREATE TABLE events (
            id {serial},
            uid TEXT NOT NULL UNIQUE,
            at_ms BIGINT NOT NULL,
            stream TEXT,
            kind TEXT NOT NULL,
            class TEXT,
            score DOUBLE PRECISION,
            box TEXT,
            data TEXT NOT NULL,
            snapshot TEXT
        )",
            "CREATE INDEX events_at ON events (at_ms)",
            "CREATE INDEX events_stream_at ON events (stream, at_ms)",
            "CREATE INDEX events_kind_at ON events (kind, at_ms)",
            "CREATE TABLE outbox (
            id {serial},
            event_uid TEXT NOT NULL,
            target TEXT NOT NULL,
            rule TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            next_at_ms BIGINT NOT NULL,
            delivered_at_ms BIGINT,
            last_error TEXT,
            UNIQUE (event_uid, target)
        )",
            "CREATE INDEX outbox_due ON outbox (delivered_at_ms, next_at_ms)",
            "CREATE TABLE viewer_minutes (
            session TEXT NOT NULL,
            minute_ms BIGINT NOT NULL,
            stream TEXT NOT NULL,
            ip TEXT,
            viewer TEXT,
            watermark TEXT,
            PRIMARY KEY (session, minute_ms)
        )",
            "CREATE INDEX viewer_minutes_stream ON viewer_minutes (stream, minute_ms)",
        ],
    ),
    (
        2,
        "fencing tokens of cluster cameras, outbox rows claimed by one node at a time",
        &[
            "ALTER TABLE events ADD COLUMN fencing_token BIGINT",
            "ALTER TABLE events ADD COLUMN seq BIGINT",
            // The newest fencing token written for each camera: an alert of an older owner is
            // stored as an event, never delivered.
            "CREATE TABLE stream_fences (
            stream TEXT PRIMARY KEY,
            token BIGINT NOT NULL
        )",
            "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
            "ALTER TABLE outbox ADD COLUMN claimed_until_ms BIGINT",
        ],
    ),
];

/// The statement for `dialect`.
pub fn render(sql: &str, postgres: bool) -> String {
    sql.replace(
        "{serial}",
        if postgres {
            "BIGSERIAL PRIMARY KEY"
        } else {
            "INTEGER PRIMARY KEY AUTOINCREMENT"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one() {
        for (i, (v, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1);
        }
    }

    #[test]
    fn serial_is_rendered_per_dialect() {
        assert!(render(MIGRATIONS[0].2[0], true).contains("BIGSERIAL PRIMARY KEY"));
        assert!(render(MIGRATIONS[0].2[0], false).contains("AUTOINCREMENT"));
    }
}
