//! The database behind the event store, through sqlx's `Any` driver: SQLite or PostgreSQL with
//! the same queries (`$1` placeholders work in both).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::event::{Event, kind};
use super::migrations::{MIGRATIONS, render};

/// A connected, migrated database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    postgres: bool,
}

/// Which events a query wants (all filters optional), newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this stream.
    pub stream: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this class.
    pub class: Option<String>,
    /// At or after, milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// Before, milliseconds since the epoch.
    pub until_ms: Option<i64>,
    /// Only ids below this (the previous page's `next_cursor`).
    pub cursor: Option<i64>,
    /// Most events returned.
    pub limit: i64,
}

/// One alert delivery waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The alert's event uid (the alert id receivers see).
    pub event_uid: String,
    /// `webhook` or `mqtt`.
    pub target: String,
    /// The rule that fired.
    pub rule: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// Counts of the outbox.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct OutboxCounts {
    /// Deliveries not done yet.
    pub pending: i64,
    /// Deliveries done.
    pub delivered: i64,
}

/// The key of the PostgreSQL advisory lock held while migrating ("framegat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6672_616d_6567_6174;

/// The password of a database URL replaced by `***`, for messages.
pub use crate::config::masked_text_url as masked;

impl Db {
    /// Connects and applies the migrations the database lacks.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres");
        let memory = url.contains(":memory:");
        let url = if postgres || memory || url.contains('?') {
            url.to_string()
        } else {
            // Create the file when it does not exist.
            format!("{url}?mode=rwc")
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(if postgres { 4 } else { 1 })
            .acquire_timeout(Duration::from_secs(5));
        if memory {
            // An in-memory SQLite database lives as long as its one connection.
            options = options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = options
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !postgres {
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        if !memory {
                            sqlx::query("PRAGMA journal_mode = WAL")
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database {}", masked(&url)))?;
        let db = Self { pool, postgres };
        db.migrate().await?;
        Ok(db)
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        if self.postgres { "postgres" } else { "sqlite" }
    }

    /// Applies the missing migrations in one transaction: all of them or none. On PostgreSQL
    /// the transaction first takes an advisory lock, so that nodes of a cluster starting
    /// together on a fresh database migrate it once, one after the other, instead of racing
    /// on `CREATE TABLE`.
    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            // The lock's value is void, which the Any driver cannot decode: count it instead.
            sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .context("locking the schema for migrations")?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .context("creating schema_migrations")?;
        let current: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await?
                .try_get("v")?;
        for (version, what, statements) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            for s in *statements {
                // Fixed text from the migrations list, no input in it.
                sqlx::query(sqlx::AssertSqlSafe(render(s, self.postgres)))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("migration {version} ({what})"))?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, description, applied_at_ms) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*what)
            .bind(super::event::epoch_ms(std::time::SystemTime::now()))
            .execute(&mut *tx)
            .await?;
            tracing::info!(version, "database migrating: {what}");
        }
        tx.commit().await.context("committing the migrations")?;
        Ok(())
    }

    /// The newest migration applied.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?
                .try_get("v")?,
        )
    }

    /// Writes events in one transaction; an event already stored (same uid) is skipped. Alerts
    /// get their outbox rows in the same transaction.
    pub async fn insert(&self, events: &[Event]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut newest: HashMap<&str, i64> = HashMap::new();
        for e in events {
            if e.kind == kind::VIEWER_MINUTE {
                let s = |k: &str| e.data.get(k).and_then(|v| v.as_str()).map(str::to_string);
                sqlx::query(
                    "INSERT INTO viewer_minutes (session, minute_ms, stream, ip, viewer, watermark)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session, minute_ms) DO NOTHING",
                )
                .bind(s("session").unwrap_or_default())
                .bind(e.at_ms)
                .bind(e.stream.clone().unwrap_or_default())
                .bind(s("ip"))
                .bind(s("viewer"))
                .bind(s("watermark"))
                .execute(&mut *tx)
                .await?;
                continue;
            }
            let rect = e
                .rect
                .map(|r| serde_json::to_string(&r).unwrap_or_default());
            // A cluster camera's newest owner, as far as this database knows.
            let stale = match (e.stream.as_deref(), e.fencing_token) {
                (Some(stream), Some(token)) => {
                    let known = match newest.get(stream) {
                        Some(n) if *n >= token => *n,
                        _ => {
                            let n = newest_token(&mut tx, stream, token).await?;
                            newest.insert(stream, n);
                            n
                        }
                    };
                    known > token
                }
                _ => false,
            };
            sqlx::query(
                "INSERT INTO events (uid, at_ms, stream, kind, class, score, box, data, snapshot,
                                     fencing_token, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (uid) DO NOTHING",
            )
            .bind(&e.uid)
            .bind(e.at_ms)
            .bind(e.stream.clone())
            .bind(&e.kind)
            .bind(e.class.clone())
            .bind(e.score)
            .bind(rect)
            .bind(e.data.to_string())
            .bind(e.snapshot.clone())
            .bind(e.fencing_token)
            .bind(e.seq)
            // Not a prepared statement kept for reuse: sqlx's Any driver declares a NULL score
            // as FLOAT4 and a present one as FLOAT8, and PostgreSQL rejects a kept statement
            // bound the other way.
            .persistent(false)
            .execute(&mut *tx)
            .await?;
            if stale && !e.deliver.is_empty() {
                tracing::warn!(
                    alert = %e.uid,
                    stream = e.stream.as_deref().unwrap_or(""),
                    fencing_token = e.fencing_token,
                    "alert of an earlier owner of the camera stored, not delivered: a newer \
                     owner has written since"
                );
                continue;
            }
            for target in &e.deliver {
                let rule = e.data.get("rule").and_then(|r| r.as_str()).unwrap_or("");
                sqlx::query(
                    "INSERT INTO outbox (event_uid, target, rule, payload, attempts, next_at_ms)
                     VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (event_uid, target) DO NOTHING",
                )
                .bind(&e.uid)
                .bind(target)
                .bind(rule)
                .bind(super::alert_payload(e).to_string())
                .bind(e.at_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events matching `q`, newest first.
    pub async fn query(&self, q: &EventQuery) -> Result<Vec<Event>> {
        let mut sql = String::from(
            "SELECT id, uid, at_ms, stream, kind, class, score, box, data, snapshot, fencing_token, seq FROM events WHERE 1 = 1",
        );
        let mut n = 0;
        let mut param = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if q.stream.is_some() {
            param(&mut sql, " AND stream = ?");
        }
        if q.kind.is_some() {
            param(&mut sql, " AND kind = ?");
        }
        if q.class.is_some() {
            param(&mut sql, " AND class = ?");
        }
        if q.since_ms.is_some() {
            param(&mut sql, " AND at_ms >= ?");
        }
        if q.until_ms.is_some() {
            param(&mut sql, " AND at_ms < ?");
        }
        if q.cursor.is_some() {
            param(&mut sql, " AND id < ?");
        }
        param(&mut sql, " ORDER BY id DESC LIMIT ?");
        // Built from fixed fragments only; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in [&q.stream, &q.kind, &q.class].into_iter().flatten() {
            query = query.bind(s.clone());
        }
        for v in [q.since_ms, q.until_ms, q.cursor].into_iter().flatten() {
            query = query.bind(v);
        }
        let rows = query.bind(q.limit).fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// One event by id.
    pub async fn get(&self, id: i64) -> Result<Option<Event>> {
        let row = sqlx::query(
            "SELECT id, uid, at_ms, stream, kind, class, score, box, data, snapshot, fencing_token, seq FROM events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// How many events are stored.
    pub async fn count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM events")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Viewer minutes of a stream since a time: `(session, minute_ms, ip, viewer, watermark)`.
    pub async fn viewer_minutes(
        &self,
        stream: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, i64, Option<String>, Option<String>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT session, minute_ms, ip, viewer, watermark FROM viewer_minutes
             WHERE stream = $1 AND minute_ms >= $2 ORDER BY minute_ms, session",
        )
        .bind(stream)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("session")?,
                    r.try_get("minute_ms")?,
                    r.try_get("ip")?,
                    r.try_get("viewer")?,
                    r.try_get("watermark")?,
                ))
            })
            .collect()
    }

    /// Deletes what is older than `before_ms`; returns the snapshot files of deleted events.
    pub async fn delete_before(&self, before_ms: i64) -> Result<(u64, Vec<String>)> {
        let snapshots: Vec<String> =
            sqlx::query("SELECT snapshot FROM events WHERE at_ms < $1 AND snapshot IS NOT NULL")
                .bind(before_ms)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .filter_map(|r| r.try_get::<String, _>("snapshot").ok())
                .collect();
        let deleted = sqlx::query("DELETE FROM events WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM viewer_minutes WHERE minute_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM outbox WHERE delivered_at_ms IS NOT NULL AND delivered_at_ms < $1",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok((deleted, snapshots))
    }

    /// Deliveries due at `now_ms`, oldest first.
    pub async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT id, event_uid, target, rule, payload, attempts FROM outbox
             WHERE delivered_at_ms IS NULL AND next_at_ms <= $1
               AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
             ORDER BY id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    id: r.try_get("id")?,
                    event_uid: r.try_get("event_uid")?,
                    target: r.try_get("target")?,
                    rule: r.try_get("rule")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// Claims a due delivery for `who` until `until_ms`, unless another process holds it (or
    /// it was delivered meanwhile): of the nodes sharing a database, one attempts each delivery
    /// at a time, and the claim of a node that died lapses. True when claimed.
    pub async fn claim(&self, id: i64, who: &str, now_ms: i64, until_ms: i64) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE outbox SET claimed_by = $1, claimed_until_ms = $2
             WHERE id = $3 AND delivered_at_ms IS NULL
               AND (claimed_until_ms IS NULL OR claimed_until_ms <= $4)",
        )
        .bind(who)
        .bind(until_ms)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    /// Marks a delivery done.
    pub async fn delivered(&self, id: i64, now_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET delivered_at_ms = $1, attempts = attempts + 1,
                               claimed_until_ms = NULL WHERE id = $2",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn retry_at(&self, id: i64, next_at_ms: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_at_ms = $1, last_error = $2,
                               claimed_until_ms = NULL WHERE id = $3",
        )
        .bind(next_at_ms)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pending and delivered counts.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN delivered_at_ms IS NULL THEN 1 ELSE 0 END), 0) AS pending,
                    COALESCE(SUM(CASE WHEN delivered_at_ms IS NULL THEN 0 ELSE 1 END), 0) AS delivered
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            pending: row.try_get("pending")?,
            delivered: row.try_get("delivered")?,
        })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn event_from_row(r: &AnyRow) -> Result<Event> {
    let rect: Option<String> = r.try_get("box")?;
    let data: String = r.try_get("data")?;
    Ok(Event {
        id: Some(r.try_get("id")?),
        uid: r.try_get("uid")?,
        at_ms: r.try_get("at_ms")?,
        stream: r.try_get("stream")?,
        kind: r.try_get("kind")?,
        class: r.try_get("class")?,
        score: r.try_get("score")?,
        rect: rect.and_then(|s| serde_json::from_str(&s).ok()),
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        snapshot: r.try_get("snapshot")?,
        fencing_token: r.try_get("fencing_token")?,
        seq: r.try_get("seq")?,
        deliver: Vec::new(),
        picture: None,
    })
}

/// Raises the camera's newest fencing token to `token` if it is older, and answers the newest.
async fn newest_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    stream: &str,
    token: i64,
) -> Result<i64> {
    sqlx::query(
        "INSERT INTO stream_fences (stream, token) VALUES ($1, $2)
         ON CONFLICT (stream) DO UPDATE SET token = excluded.token
         WHERE stream_fences.token < excluded.token",
    )
    .bind(stream)
    .bind(token)
    .execute(&mut **tx)
    .await?;
    Ok(
        sqlx::query("SELECT token FROM stream_fences WHERE stream = $1")
            .bind(stream)
            .fetch_one(&mut **tx)
            .await?
            .try_get("token")?,
    )
}
