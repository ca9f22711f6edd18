//! The outbox worker: delivers alerts written to the `outbox` table, at least once. A failed
//! attempt is retried with exponential backoff (1 s doubling to 60 s); the rows live in the
//! database, so deliveries survive a restart of framegate and of the receiver.
//!
//! Nodes of a cluster share one database: each row is claimed by one node before its attempt
//! (for the attempt's timeout and a margin), so that one node delivers it, and the claim of a
//! node that died mid-attempt lapses for another to take up. A delivery is repeated only when
//! a node died (or was stopped past its claim) between the receiver's answer and its record:
//! receivers drop a repeat by the alert's `id`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::{Db, Delivery, Store, epoch_ms};

use super::AlertRules;
use super::{mqtt, webhook};

/// Rows taken per pass.
const PASS: i64 = 50;
/// Longest wait between passes when nothing new was written.
const IDLE: Duration = Duration::from_millis(500);
const BACKOFF_MAX_S: f64 = 60.0;
/// How long a claim outlives the attempt's own timeout.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// The delay before attempt number `attempts + 1`.
pub fn backoff(attempts: i64) -> Duration {
    Duration::from_secs_f64(2f64.powi(attempts.clamp(0, 10) as i32).min(BACKOFF_MAX_S))
}

/// Runs until the runtime stops; `who` names this process in the rows it claims.
pub async fn run(store: Arc<Store>, rules: Arc<AlertRules>, who: String) {
    let client = reqwest::Client::new();
    let mut changes = store.changes();
    loop {
        let _ = tokio::time::timeout(IDLE, changes.changed()).await;
        let Some(db) = store.db() else { continue };
        let due = match db.due(epoch_ms(SystemTime::now()), PASS).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("outbox not readable: {e:#}");
                continue;
            }
        };
        for d in due {
            let limit = rules.get(&d.rule).map_or(Duration::from_secs(5), |r| {
                let t = match d.target.as_str() {
                    "webhook" => r.webhook.as_ref().map(|w| w.timeout_s),
                    _ => r.mqtt.as_ref().map(|m| m.timeout_s),
                };
                Duration::from_secs_f64(t.unwrap_or(5.0))
            }) + Duration::from_secs(1);
            let now = epoch_ms(SystemTime::now());
            let until = now + (limit + CLAIM_MARGIN).as_millis() as i64;
            match db.claim(d.id, &who, now, until).await {
                Ok(true) => {}
                Ok(false) => continue, // another node took it first
                Err(e) => {
                    tracing::debug!("outbox row not claimed: {e:#}");
                    continue;
                }
            }
            let result = tokio::time::timeout(limit, attempt(&client, &rules, &d))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {limit:?}")));
            settle(&db, &d, result).await;
        }
    }
}

async fn attempt(client: &reqwest::Client, rules: &AlertRules, d: &Delivery) -> anyhow::Result<()> {
    let Some(rule) = rules.get(&d.rule) else {
        anyhow::bail!("alert rule `{}` is no longer configured", d.rule);
    };
    match (d.target.as_str(), &rule.webhook, &rule.mqtt) {
        ("webhook", Some(w), _) => webhook::post(client, w, d).await,
        ("mqtt", _, Some(m)) => mqtt::publish(m, d).await,
        (t, _, _) => anyhow::bail!("alert rule `{}` has no `{t}` target any more", d.rule),
    }
}

async fn settle(db: &Db, d: &Delivery, result: anyhow::Result<()>) {
    let now = epoch_ms(SystemTime::now());
    let written = match &result {
        Ok(()) => {
            tracing::info!(alert = %d.event_uid, target = %d.target, "alert delivered");
            db.delivered(d.id, now).await
        }
        Err(e) => {
            let wait = backoff(d.attempts);
            tracing::warn!(
                alert = %d.event_uid,
                target = %d.target,
                attempt = d.attempts + 1,
                "alert not delivered, retry in {:.0} s: {e:#}",
                wait.as_secs_f64()
            );
            db.retry_at(d.id, now + wait.as_millis() as i64, &format!("{e:#}"))
                .await
        }
    };
    if let Err(e) = written {
        tracing::warn!("outbox not updated (the delivery will be repeated): {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(60));
    }
}
