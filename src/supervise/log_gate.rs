//! One log line per cause and interval: a failure that repeats 25 times a second (a refused
//! frame, a full disk) is logged once, then again only when its cause changes or the interval
//! has passed.

use std::time::{Duration, Instant};

/// Remembers the last cause logged and when.
#[derive(Debug, Clone)]
pub struct LogGate {
    every: Duration,
    last: Option<(String, Instant)>,
}

impl LogGate {
    /// A gate that lets the same cause through at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self { every, last: None }
    }

    /// Whether a line about `cause` should be logged now (and if so, remembers it).
    pub fn admit(&mut self, cause: &str) -> bool {
        let quiet = self
            .last
            .as_ref()
            .is_some_and(|(c, t)| c == cause && t.elapsed() < self.every);
        if !quiet {
            self.last = Some((cause.to_string(), Instant::now()));
        }
        !quiet
    }

    /// Forgets the last cause (the failure ended): the next one is logged at once.
    pub fn reset(&mut self) -> bool {
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_cause_is_let_through_once_per_interval_a_new_one_at_once() {
        let mut g = LogGate::new(Duration::from_secs(3600));
        assert!(g.admit("disk full"));
        assert!(!g.admit("disk full"));
        assert!(g.admit("permission denied"));
        assert!(g.admit("disk full"));
        assert!(g.reset());
        assert!(!g.reset());
        assert!(g.admit("disk full"));
        let mut fast = LogGate::new(Duration::ZERO);
        assert!(fast.admit("x"));
        assert!(fast.admit("x"));
    }
}
