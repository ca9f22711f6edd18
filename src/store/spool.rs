//! The on-disk queue of events that could not be written to the database yet: JSON lines
//! appended to one file (flushed to disk with each batch), read back in order once the
//! database answers, then truncated. Bounded: what does not fit is dropped and counted.
//! Writing the same events twice is harmless (the database skips known uids), so a crash
//! between writing to the database and truncating loses nothing and duplicates nothing.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::event::Event;

/// The queue file.
pub struct Spool {
    path: Option<PathBuf>,
    /// Events in the file (or in memory, without a file).
    len: u64,
    max: u64,
    memory: Vec<Event>,
}

impl Spool {
    /// Opens the queue in `dir` (created if needed), counting what a previous run left;
    /// without a folder the queue lives in memory.
    pub fn open(dir: Option<&Path>, max: u64) -> Result<Self> {
        let Some(dir) = dir else {
            return Ok(Self {
                path: None,
                len: 0,
                max,
                memory: Vec::new(),
            });
        };
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the events folder {}", dir.display()))?;
        let path = dir.join("queue.jsonl");
        let len = match File::open(&path) {
            Ok(f) => BufReader::new(f).lines().count() as u64,
            Err(_) => 0,
        };
        if len > 0 {
            tracing::info!(
                events = len,
                "events queued by an earlier run will be written"
            );
        }
        Ok(Self {
            path: Some(path),
            len,
            max,
            memory: Vec::new(),
        })
    }

    /// Events waiting.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends events; returns how many did not fit.
    pub fn append(&mut self, events: &[Event]) -> Result<u64> {
        let room = self.max.saturating_sub(self.len) as usize;
        let (keep, over) = events.split_at(events.len().min(room));
        if keep.is_empty() {
            return Ok(over.len() as u64);
        }
        match &self.path {
            None => self.memory.extend(keep.iter().cloned()),
            Some(path) => {
                let mut text = String::new();
                for e in keep {
                    text.push_str(&serde_json::to_string(e)?);
                    text.push('\n');
                }
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                f.write_all(text.as_bytes())?;
                f.sync_data()?;
            }
        }
        self.len += keep.len() as u64;
        Ok(over.len() as u64)
    }

    /// Everything waiting, oldest first (lines that cannot be read are skipped and logged).
    pub fn read(&self) -> Result<Vec<Event>> {
        let Some(path) = &self.path else {
            return Ok(self.memory.clone());
        };
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line?;
            match serde_json::from_str(&line) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!(
                    "{}:{}: unreadable event skipped: {e}",
                    path.display(),
                    i + 1
                ),
            }
        }
        Ok(out)
    }

    /// Empties the queue (after its events were written).
    pub fn clear(&mut self) -> Result<()> {
        self.memory.clear();
        if let Some(path) = &self.path {
            File::create(path)?.sync_all()?;
        }
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event::new("stream.state", Some("cam"), serde_json::json!({ "n": n }))
    }

    #[test]
    fn keeps_events_across_reopen_and_bounds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(Some(dir.path()), 5).expect("open");
        assert_eq!(s.append(&[ev(1), ev(2), ev(3)]).expect("append"), 0);
        assert_eq!(s.append(&[ev(4), ev(5), ev(6), ev(7)]).expect("append"), 2);
        let again = Spool::open(Some(dir.path()), 5).expect("reopen");
        assert_eq!(again.len(), 5);
        let read = again.read().expect("read");
        let ns: Vec<u64> = read
            .iter()
            .map(|e| e.data["n"].as_u64().unwrap_or(0))
            .collect();
        assert_eq!(ns, [1, 2, 3, 4, 5]);
        s.clear().expect("clear");
        assert!(Spool::open(Some(dir.path()), 5).expect("reopen").is_empty());
    }

    #[test]
    fn a_damaged_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(Some(dir.path()), 10).expect("open");
        s.append(&[ev(1)]).expect("append");
        let path = dir.path().join("queue.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{not json\n").expect("write");
        s.append(&[ev(2)]).expect("append");
        assert_eq!(s.read().expect("read").len(), 2);
    }
}
