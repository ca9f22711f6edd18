//! The on-disk queue of events that could not be written to the database yet: JSON lines
//! appended to one file (flushed to disk with each batch), read back in order once the
//! database answers, then truncated. Bounded: what does not fit is dropped and counted.
//! Writing the same events twice is harmless (the database skips known uids), so a crash
//! between writing to the database and truncating loses nothing and duplicates nothing.
//!
//! When the disk refuses a write (full, read-only, gone), the partial line is cut off again
//! (the file never holds half an event) and the events are held in memory, up to
//! [`HELD_MAX`], and appended first by the next write that succeeds.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::event::Event;

/// Most events held in memory while the disk refuses the queue's writes.
pub const HELD_MAX: usize = 20_000;

/// The queue file.
pub struct Spool {
    path: Option<PathBuf>,
    /// Events in the file (or in memory, without a file).
    len: u64,
    max: u64,
    memory: Vec<Event>,
    /// Events the disk refused, oldest first, waiting for the next write.
    held: Vec<Event>,
    /// Why the last write to the disk failed, until one succeeds.
    disk_error: Option<String>,
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
                held: Vec::new(),
                disk_error: None,
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
            held: Vec::new(),
            disk_error: None,
        })
    }

    /// Events waiting (on disk and held in memory).
    pub fn len(&self) -> u64 {
        self.len + self.held.len() as u64
    }

    /// Events held in memory because the disk refused them.
    pub fn held(&self) -> u64 {
        self.held.len() as u64
    }

    /// Why the disk refuses the queue's writes, while it does.
    pub fn disk_error(&self) -> Option<&str> {
        self.disk_error.as_deref()
    }

    /// Whether nothing waits (on disk or held in memory).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends events (after any the disk refused before); returns how many did not fit.
    /// A refused write is not an error here: the events are held (see [`Self::disk_error`]).
    pub fn append(&mut self, events: &[Event]) -> u64 {
        let room = self.max.saturating_sub(self.len()) as usize;
        let (keep, over) = events.split_at(events.len().min(room));
        let mut dropped = over.len() as u64;
        let Some(path) = &self.path else {
            self.memory.extend(keep.iter().cloned());
            self.len += keep.len() as u64;
            return dropped;
        };
        if keep.is_empty() && self.held.is_empty() {
            return dropped;
        }
        let mut pending = std::mem::take(&mut self.held);
        pending.extend(keep.iter().cloned());
        match append_lines(path, &pending) {
            Ok(()) => {
                self.len += pending.len() as u64;
                self.disk_error = None;
            }
            Err(e) => {
                if pending.len() > HELD_MAX {
                    dropped += (pending.len() - HELD_MAX) as u64;
                    pending.truncate(HELD_MAX);
                }
                self.held = pending;
                self.disk_error = Some(format!("{e:#}"));
            }
        }
        dropped
    }

    /// Everything waiting, oldest first (lines that cannot be read are skipped and logged).
    pub fn read(&self) -> Result<Vec<Event>> {
        let Some(path) = &self.path else {
            return Ok(self.memory.clone());
        };
        let mut out = Vec::new();
        let f = match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        for (i, line) in f
            .map(BufReader::new)
            .into_iter()
            .flat_map(|f| f.lines())
            .enumerate()
        {
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
        out.extend(self.held.iter().cloned());
        Ok(out)
    }

    /// Empties the queue (after its events were written).
    pub fn clear(&mut self) -> Result<()> {
        self.memory.clear();
        self.held.clear();
        if let Some(path) = &self.path {
            File::create(path)?.sync_all()?;
        }
        self.len = 0;
        Ok(())
    }
}

/// Appends one JSON line per event and flushes them to the disk; a write that fails is cut
/// off again, so the file never ends in half a line.
fn append_lines(path: &Path, events: &[Event]) -> Result<()> {
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e)?);
        text.push('\n');
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let before = f.metadata()?.len();
    if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_data()) {
        let _ = f.set_len(before);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
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
        assert_eq!(s.append(&[ev(1), ev(2), ev(3)]), 0);
        assert_eq!(s.append(&[ev(4), ev(5), ev(6), ev(7)]), 2);
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
        s.append(&[ev(1)]);
        let path = dir.path().join("queue.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{not json\n").expect("write");
        s.append(&[ev(2)]);
        assert_eq!(s.read().expect("read").len(), 2);
    }

    #[test]
    fn events_the_disk_refuses_are_held_and_written_first_when_it_takes_them_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(Some(dir.path()), 100).expect("open");
        // The queue file's place is taken by a folder: every write fails.
        let path = dir.path().join("queue.jsonl");
        std::fs::create_dir(&path).expect("mkdir");
        assert_eq!(s.append(&[ev(2), ev(3)]), 0);
        assert!(s.disk_error().is_some());
        assert_eq!((s.len(), s.held()), (2, 2));
        assert!(!s.is_empty(), "held events wait too");
        std::fs::remove_dir(&path).expect("rmdir");
        // Nothing new comes: an empty append still writes what is held, oldest first.
        assert_eq!(s.append(&[]), 0);
        assert!(s.disk_error().is_none());
        assert_eq!((s.len(), s.held()), (2, 0));
        s.append(&[ev(4)]);
        let ns: Vec<u64> = Spool::open(Some(dir.path()), 100)
            .expect("reopen")
            .read()
            .expect("read")
            .iter()
            .map(|e| e.data["n"].as_u64().unwrap_or(0))
            .collect();
        assert_eq!(ns, [2, 3, 4]);
    }

    #[test]
    fn a_full_device_refuses_the_write_and_the_bound_still_holds() {
        if !Path::new("/dev/full").exists() {
            eprintln!("skipped: no /dev/full on this machine");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(Some(dir.path()), 5).expect("open");
        std::os::unix::fs::symlink("/dev/full", dir.path().join("queue.jsonl")).expect("link");
        let dropped = s.append(&[ev(1), ev(2), ev(3), ev(4), ev(5), ev(6), ev(7)]);
        assert_eq!(
            dropped, 2,
            "the queue's own bound applies to held events too"
        );
        assert_eq!(s.held(), 5);
        let error = s.disk_error().expect("an error").to_string();
        assert!(error.contains("No space left"), "{error}");
        assert_eq!(s.append(&[ev(8)]), 1);
    }
}
