//! Alerts: rules evaluated on every model result of the streams they watch; an alert is an
//! event (stored) with outbox rows in the same transaction, delivered at least once to a
//! webhook and/or an MQTT topic by the outbox worker. Each alert carries its event's uid as
//! `id`, the same on every retry, so receivers can drop duplicates.

mod deliver;
mod mqtt;
mod rules;
mod webhook;

pub use deliver::{backoff, run as run_outbox};
pub use rules::{AlertRules, StreamAlerts, TrackAlerts, Tracked, TrackedDeed, inside};
pub use webhook::{ID_HEADER, SIGNATURE_HEADER, signature};
