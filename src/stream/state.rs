//! A stream's state machine, visible in the logs (one line per change) and to the API.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::config::StreamId;
use crate::store::{Event, EventSink, kind};

/// Where a stream is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamState {
    /// Opening the source.
    Connecting,
    /// Frames are flowing.
    Live,
    /// Connected, but no frame for the stall timeout: outputs show the slate.
    Stalled,
    /// Waiting before the next attempt to open the source.
    Reconnecting {
        /// Attempt number, from 1.
        attempt: u32,
        /// Delay before it.
        delay: Duration,
    },
    /// Stopped on purpose.
    Stopped,
}

impl StreamState {
    /// The state's name without details (`live`, `reconnecting`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Stalled => "stalled",
            Self::Reconnecting { .. } => "reconnecting",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Live => f.write_str("live"),
            Self::Stalled => f.write_str("stalled"),
            Self::Reconnecting { attempt, delay } => write!(
                f,
                "reconnecting (attempt {attempt}, in {:.1} s)",
                delay.as_secs_f64()
            ),
            Self::Stopped => f.write_str("stopped"),
        }
    }
}

/// The state of one stream, with when it was entered, and the last failure.
pub struct StateCell {
    id: StreamId,
    events: EventSink,
    inner: Mutex<(StreamState, Instant)>,
    last_error: Mutex<Option<(String, SystemTime)>>,
}

impl StateCell {
    /// A stream that is connecting; its changes are recorded in `events`.
    pub fn new(id: StreamId, events: EventSink) -> Self {
        Self {
            id,
            events,
            inner: Mutex::new((StreamState::Connecting, Instant::now())),
            last_error: Mutex::new(None),
        }
    }

    /// The last reason the source failed or stalled, and when.
    pub fn last_error(&self) -> Option<(String, SystemTime)> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The current state.
    pub fn get(&self) -> StreamState {
        self.lock().0.clone()
    }

    /// How long the stream has been in its current state.
    pub fn since(&self) -> Duration {
        self.lock().1.elapsed()
    }

    /// Moves to `new`, logging the change with its reason; no-op when nothing changes.
    pub fn set(&self, new: StreamState, reason: Option<&str>) {
        let old = {
            let mut g = self.lock();
            if g.0 == new {
                return;
            }
            let old = std::mem::replace(&mut g.0, new.clone());
            g.1 = Instant::now();
            old
        };
        if let (Some(r), StreamState::Reconnecting { .. } | StreamState::Stalled) = (reason, &new)
            && let Ok(mut e) = self.last_error.lock()
        {
            *e = Some((r.to_string(), SystemTime::now()));
        }
        match reason {
            Some(r) => tracing::info!(stream = %self.id, "{old} → {new}: {r}"),
            None => tracing::info!(stream = %self.id, "{old} → {new}"),
        }
        // Stored: the stream going live, stalling, going down (its first retry, not every
        // retry of a long outage) and stopping.
        let stored = match &new {
            StreamState::Live | StreamState::Stalled | StreamState::Stopped => true,
            StreamState::Reconnecting { attempt, .. } => *attempt == 1,
            StreamState::Connecting => false,
        };
        if stored {
            self.events.record(Event::new(
                kind::STREAM_STATE,
                Some(self.id.as_str()),
                serde_json::json!({
                    "state": new.name(),
                    "from": old.name(),
                    "detail": new.to_string(),
                    "reason": reason,
                }),
            ));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (StreamState, Instant)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
