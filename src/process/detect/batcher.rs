//! Dynamic batching: one thread per model takes the inputs waiting from all streams, up to
//! `max_batch` or until the first has waited `max_wait`, and prepares them (pre-processing runs
//! here, off the streams' threads, and off the model's: the next batch is prepared while one
//! runs); a second thread runs each batch and hands each result back to its stream. Submitting
//! never blocks: a stream has at most one input waiting or running, and a stream that wants
//! another while its last is not done drops it (counted by the caller).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::supervise::lock;

/// One model output for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its shape, batch dimension 1.
    pub dims: Vec<i64>,
    /// Its values.
    pub data: Vec<f32>,
}

/// What runs a batch: the ONNX Runtime session, or a stand-in in tests.
pub trait Backend: Send + 'static {
    /// Runs the inputs (each one input's values) and returns one output per input, in order.
    fn run(&mut self, inputs: &[&[f32]]) -> anyhow::Result<Vec<Output>>;
}

/// Called with the result of one input, on the model's thread.
pub type Reply = Box<dyn FnOnce(Result<Output, String>) + Send>;

/// Makes one input's values, on the preparing thread, while the batch before it runs.
pub type Prepare = Box<dyn FnOnce() -> anyhow::Result<Vec<f32>> + Send>;

struct Job {
    prepare: Prepare,
    reply: Answer,
    queued: Instant,
}

/// A reply that is always given: if it is dropped unanswered (the loop that held it panicked,
/// or the model's thread ended), the stream gets an error instead of waiting for ever. Dropped
/// during a panic, it is set aside and answered once the panic is caught (a reply is the
/// stream's code, which must not run while the thread unwinds).
struct Answer {
    reply: Option<Reply>,
    orphans: Arc<Mutex<Vec<Reply>>>,
}

impl Answer {
    fn send(mut self, result: Result<Output, String>) {
        if let Some(reply) = self.reply.take() {
            reply(result);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            if std::thread::panicking() {
                lock(&self.orphans).push(reply);
            } else {
                reply(Err(RESTARTED.into()));
            }
        }
    }
}

const RESTARTED: &str = "the model's thread was restarted";

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// Counters of one model.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Batches run.
    pub batches: AtomicU64,
    /// Inputs run.
    pub inputs: AtomicU64,
    /// Inputs whose run failed.
    pub failures: AtomicU64,
    /// Panics caught in pre-processing or in a run: the thread survives them, the inputs
    /// concerned are answered with the error, the next batch runs as usual.
    pub panics: AtomicU64,
    /// Times the model's loop was started again after a panic anywhere else in it (in a
    /// stream's reply, or in the batching itself): the inputs it held are answered with an
    /// error, the backend is kept.
    pub restarts: AtomicU64,
    /// Time spent running, nanoseconds.
    pub busy_ns: AtomicU64,
    /// Time spent preparing inputs (on the preparing thread, beside the runs), nanoseconds.
    pub prepare_ns: AtomicU64,
    /// Time inputs waited before their batch ran, nanoseconds (total).
    pub wait_ns: AtomicU64,
    /// Size of the largest batch run.
    pub largest: AtomicU64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: BatchStats,
    /// Replies set aside while the loop unwound from a panic.
    orphans: Arc<Mutex<Vec<Reply>>>,
}

/// The batching queue and its two threads: one gathers and prepares batches, one runs them.
pub struct Batcher {
    shared: Arc<Shared>,
    /// The preparing thread, then the model's.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Batcher {
    /// Starts the model's threads.
    pub fn start(
        name: &str,
        mut backend: Box<dyn Backend>,
        max_batch: usize,
        max_wait: Duration,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            stats: BatchStats::default(),
            orphans: Arc::default(),
        });
        // A rendezvous: the next batch is prepared while one runs, and waits for the model.
        let (to_model, batches) = std::sync::mpsc::sync_channel(0);
        let preparer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("prep-{name}"))
                .spawn(move || {
                    supervise(&shared, "model preparation", || {
                        prepare_loop(&shared, max_batch.max(1), max_wait, &to_model);
                    });
                })
                .ok()
        };
        let model = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("model-{name}"))
                .spawn(move || {
                    supervise(&shared, "model thread", || {
                        run(&shared, backend.as_mut(), &batches);
                    });
                })
                .ok()
        };
        let threads = match (preparer, model) {
            (Some(p), Some(m)) => vec![p, m],
            // Without both, inputs are answered at once (`thread_ended`); a lone thread ends
            // once closed.
            (p, m) => {
                lock(&shared.queue).closed = true;
                shared.wake.notify_all();
                p.into_iter().chain(m).for_each(|t| {
                    let _ = t.join();
                });
                Vec::new()
            }
        };
        Self {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// Queues an input; `reply` gets its result.
    pub fn submit(&self, prepare: Prepare, reply: Reply) {
        let mut q = lock(&self.shared.queue);
        if q.closed || self.thread_ended() {
            drop(q);
            reply(Err("the model is shutting down".into()));
            return;
        }
        q.jobs.push_back(Job {
            prepare,
            reply: Answer {
                reply: Some(reply),
                orphans: self.shared.orphans.clone(),
            },
            queued: Instant::now(),
        });
        drop(q);
        self.shared.wake.notify_one();
    }

    /// Whether a thread of the model is gone (it never started, or ended): inputs would wait
    /// for ever, so they are answered at once.
    fn thread_ended(&self) -> bool {
        let threads = lock(&self.threads);
        threads.len() < 2 || threads.iter().any(JoinHandle::is_finished)
    }

    /// The model's counters.
    pub fn stats(&self) -> &BatchStats {
        &self.shared.stats
    }

    /// Inputs waiting now.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).jobs.len()
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_all();
        // The preparing thread ends first; its end ends the model's loop.
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

/// Runs `f`, turning a panic into an error (counted), so that one bad input or a bug in a
/// decoder never ends the model's thread, and every stream waiting on it gets an answer.
fn guarded<T>(s: &BatchStats, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    crate::supervise::caught(f).unwrap_or_else(|why| {
        s.panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!("model thread: caught a panic ({why}); the model goes on");
        Err(anyhow::anyhow!("the model panicked: {why}"))
    })
}

/// A batch prepared for the model: its inputs and whom to answer.
struct Prepared {
    inputs: Vec<Vec<f32>>,
    answers: Vec<Answer>,
}

/// Runs `body` on this thread, and again after a panic that escaped it (in a stream's reply, or
/// in the batching), counted and logged once a minute per cause, after a short pause so that a
/// loop that always panics does not spin; the replies a panic set aside are answered.
fn supervise(shared: &Shared, what: &str, mut body: impl FnMut()) {
    let mut logged = crate::supervise::LogGate::new(Duration::from_secs(60));
    loop {
        match crate::supervise::caught(&mut body) {
            Ok(()) => return,
            Err(why) => {
                shared.stats.restarts.fetch_add(1, Ordering::Relaxed);
                let orphans = std::mem::take(&mut *lock(&shared.orphans));
                for reply in orphans {
                    let _ = crate::supervise::caught(|| reply(Err(RESTARTED.into())));
                }
                if logged.admit(&why) {
                    tracing::error!("{what}: a panic escaped the loop ({why}); starting it again");
                }
                let q = lock(&shared.queue);
                if q.closed {
                    return;
                }
                let _ = shared
                    .wake
                    .wait_timeout(q, Duration::from_millis(100))
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }
}

/// The next batch: waits for a first input, then for more until the batch is full or its first
/// input waited `max_wait`. `None` once closed (what was queued is answered).
fn gather(shared: &Shared, max_batch: usize, max_wait: Duration) -> Option<Vec<Job>> {
    let mut q = lock(&shared.queue);
    while q.jobs.is_empty() && !q.closed {
        q = shared
            .wake
            .wait(q)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    if q.closed {
        for job in q.jobs.drain(..) {
            job.reply.send(Err("the model is shutting down".into()));
        }
        return None;
    }
    let deadline = q.jobs[0].queued + max_wait;
    while q.jobs.len() < max_batch && !q.closed {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        q = shared
            .wake
            .wait_timeout(q, deadline - now)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    let n = q.jobs.len().min(max_batch);
    Some(q.jobs.drain(..n).collect())
}

/// The preparing loop: gathers a batch and prepares its inputs while the model runs the one
/// before (a GPU is not left waiting for the CPU's resizing), then hands it over; at most one
/// prepared batch waits, so what runs is never older than one batch. Ends when closed.
fn prepare_loop(
    shared: &Shared,
    max_batch: usize,
    max_wait: Duration,
    to_model: &std::sync::mpsc::SyncSender<Prepared>,
) {
    while let Some(batch) = gather(shared, max_batch, max_wait) {
        let started = Instant::now();
        let s = &shared.stats;
        for job in &batch {
            s.wait_ns.fetch_add(
                started.duration_since(job.queued).as_nanos() as u64,
                Ordering::Relaxed,
            );
        }
        // Inputs that cannot be prepared are answered at once; the others run together.
        let (mut inputs, mut answers) = (Vec::new(), Vec::new());
        for job in batch {
            match guarded(s, job.prepare) {
                Ok(input) => {
                    inputs.push(input);
                    answers.push(job.reply);
                }
                Err(e) => {
                    s.failures.fetch_add(1, Ordering::Relaxed);
                    job.reply.send(Err(format!("{e:#}")));
                }
            }
        }
        s.prepare_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if !inputs.is_empty()
            && let Err(back) = to_model.send(Prepared { inputs, answers })
        {
            // The model's thread is gone: its answers say so (dropped, they would too).
            for answer in back.0.answers {
                answer.send(Err(RESTARTED.into()));
            }
            return;
        }
    }
}

/// The model's loop: runs each prepared batch and answers its inputs, until the preparing loop
/// ends.
fn run(shared: &Shared, backend: &mut dyn Backend, batches: &std::sync::mpsc::Receiver<Prepared>) {
    while let Ok(Prepared { inputs, answers }) = batches.recv() {
        let started = Instant::now();
        let s = &shared.stats;
        let views: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let result = guarded(s, || backend.run(&views));
        s.busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.inputs.fetch_add(answers.len() as u64, Ordering::Relaxed);
        s.largest.fetch_max(answers.len() as u64, Ordering::Relaxed);
        match result {
            Ok(outputs) if outputs.len() == answers.len() => {
                for (reply, out) in answers.into_iter().zip(outputs) {
                    reply.send(Ok(out));
                }
            }
            Ok(outputs) => {
                s.failures
                    .fetch_add(answers.len() as u64, Ordering::Relaxed);
                let e = format!("{} outputs for {} inputs", outputs.len(), answers.len());
                for reply in answers {
                    reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                s.failures
                    .fetch_add(answers.len() as u64, Ordering::Relaxed);
                let e = format!("{e:#}");
                for reply in answers {
                    reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Each input's first value, as its output.
    fn echo(inputs: &[&[f32]]) -> Vec<Output> {
        inputs
            .iter()
            .map(|i| Output {
                dims: vec![1],
                data: vec![i[0]],
            })
            .collect()
    }

    /// Echoes each input's first value after a delay, recording batch sizes.
    struct Slow {
        delay: Duration,
        sizes: Arc<Mutex<Vec<usize>>>,
    }

    impl Backend for Slow {
        fn run(&mut self, inputs: &[&[f32]]) -> anyhow::Result<Vec<Output>> {
            std::thread::sleep(self.delay);
            lock(&self.sizes).push(inputs.len());
            Ok(echo(inputs))
        }
    }

    #[test]
    fn gathers_batches_and_answers_each_input() {
        let sizes = Arc::default();
        let b = Batcher::start(
            "test",
            Box::new(Slow {
                delay: Duration::from_millis(1),
                sizes: Arc::clone(&sizes),
            }),
            4,
            Duration::from_millis(500),
        );
        let (tx, rx) = mpsc::channel();
        for i in 0..4 {
            let tx = tx.clone();
            b.submit(
                Box::new(move || Ok(vec![i as f32])),
                Box::new(move |r| tx.send((i, r)).expect("send")),
            );
        }
        let mut got: Vec<(i32, f32)> = (0..4)
            .map(|_| {
                let (i, r) = rx.recv_timeout(Duration::from_secs(5)).expect("reply");
                (i, r.expect("ok").data[0])
            })
            .collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(got, [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)]);
        // Four inputs queued within the wait ran as one full batch.
        assert_eq!(*lock(&sizes), [4]);
        assert_eq!(b.stats().largest.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_lone_input_runs_once_max_wait_is_over() {
        let sizes = Arc::default();
        let b = Batcher::start(
            "test",
            Box::new(Slow {
                delay: Duration::ZERO,
                sizes: Arc::clone(&sizes),
            }),
            8,
            Duration::from_millis(20),
        );
        let (tx, rx) = mpsc::channel();
        let t = Instant::now();
        b.submit(
            Box::new(|| Ok(vec![7.0])),
            Box::new(move |r| tx.send(r).expect("send")),
        );
        let out = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reply")
            .expect("ok");
        assert_eq!(out.data, [7.0]);
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert_eq!(*lock(&sizes), [1]);
    }

    /// Panics on an input whose first value is negative.
    struct Fragile;

    impl Backend for Fragile {
        fn run(&mut self, inputs: &[&[f32]]) -> anyhow::Result<Vec<Output>> {
            assert!(inputs.iter().all(|i| i[0] >= 0.0), "a negative input");
            Ok(echo(inputs))
        }
    }

    #[test]
    fn a_panic_in_a_run_or_a_preparation_is_answered_and_the_model_goes_on() {
        let b = Batcher::start("test", Box::new(Fragile), 1, Duration::ZERO);
        let ask = |prepare: Prepare| {
            let (tx, rx) = mpsc::channel();
            b.submit(prepare, Box::new(move |r| tx.send(r).expect("send")));
            rx.recv_timeout(Duration::from_secs(5)).expect("an answer")
        };
        let e = ask(Box::new(|| Ok(vec![-1.0]))).expect_err("the run panicked");
        assert!(
            e.contains("panicked") && e.contains("a negative input"),
            "{e}"
        );
        let e = ask(Box::new(|| panic!("bad frame"))).expect_err("the preparation panicked");
        assert!(e.contains("bad frame"), "{e}");
        // The same thread runs the next input.
        assert_eq!(ask(Box::new(|| Ok(vec![3.0]))).expect("ok").data, [3.0]);
        assert_eq!(b.stats().panics.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_panic_in_a_reply_restarts_the_loop_and_every_input_is_still_answered() {
        // Batches of two: the first reply panics, its batch-mate is answered all the same.
        let b = Batcher::start("test", Box::new(Fragile), 2, Duration::from_millis(200));
        let (tx, rx) = mpsc::channel();
        b.submit(
            Box::new(|| Ok(vec![1.0])),
            Box::new(|_| panic!("a stream's reply went wrong")),
        );
        let tx2 = tx.clone();
        b.submit(
            Box::new(|| Ok(vec![2.0])),
            Box::new(move |r| tx2.send(r).expect("send")),
        );
        let r = rx.recv_timeout(Duration::from_secs(5)).expect("an answer");
        assert_eq!(r.expect_err("its batch was cut short"), RESTARTED);
        assert_eq!(b.stats().restarts.load(Ordering::Relaxed), 1);
        // The loop runs again on the same thread, with the same backend.
        b.submit(
            Box::new(|| Ok(vec![3.0])),
            Box::new(move |r| tx.send(r).expect("send")),
        );
        let r = rx.recv_timeout(Duration::from_secs(5)).expect("an answer");
        assert_eq!(r.expect("ok").data, [3.0]);
        assert!(!b.thread_ended());
    }

    /// Its first run waits (5 s at most) for the second input's preparation, noting whether it
    /// came: it does only where batches are prepared while one runs.
    struct WaitsForTheNext {
        next_prepared: Arc<(Mutex<bool>, Condvar)>,
        saw: Arc<Mutex<Option<bool>>>,
    }

    impl Backend for WaitsForTheNext {
        fn run(&mut self, inputs: &[&[f32]]) -> anyhow::Result<Vec<Output>> {
            let mut saw = lock(&self.saw);
            if saw.is_none() {
                let (flag, cv) = &*self.next_prepared;
                let (done, _) = cv
                    .wait_timeout_while(lock(flag), Duration::from_secs(5), |d| !*d)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *saw = Some(*done);
            }
            Ok(echo(inputs))
        }
    }

    #[test]
    fn the_next_batch_is_prepared_while_one_runs() {
        let next_prepared = Arc::new((Mutex::new(false), Condvar::new()));
        let saw = Arc::new(Mutex::new(None));
        let b = Batcher::start(
            "test",
            Box::new(WaitsForTheNext {
                next_prepared: next_prepared.clone(),
                saw: saw.clone(),
            }),
            1,
            Duration::ZERO,
        );
        let (tx, rx) = mpsc::channel();
        let first_running = Arc::new((Mutex::new(false), Condvar::new()));
        {
            let (tx, first_running) = (tx.clone(), first_running.clone());
            b.submit(
                Box::new(move || {
                    let (flag, cv) = &*first_running;
                    *lock(flag) = true;
                    cv.notify_all();
                    Ok(vec![1.0])
                }),
                Box::new(move |r| tx.send(r).expect("send")),
            );
        }
        // The second input is queued once the first has been prepared (it is then running, or
        // about to): its preparation must not wait for the first's run.
        {
            let (flag, cv) = &*first_running;
            let _ = cv
                .wait_timeout_while(lock(flag), Duration::from_secs(5), |d| !*d)
                .expect("lock");
        }
        let signal = next_prepared.clone();
        b.submit(
            Box::new(move || {
                let (flag, cv) = &*signal;
                *lock(flag) = true;
                cv.notify_all();
                Ok(vec![2.0])
            }),
            Box::new(move |r| tx.send(r).expect("send")),
        );
        let mut got: Vec<f32> = (0..2)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("reply")
                    .expect("ok")
                    .data[0]
            })
            .collect();
        got.sort_by(f32::total_cmp);
        assert_eq!(got, [1.0, 2.0]);
        assert_eq!(
            *lock(&saw),
            Some(true),
            "the second input waited for the first's run"
        );
        assert!(b.stats().prepare_ns.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn submitting_to_a_slow_model_never_blocks() {
        let b = Batcher::start(
            "test",
            Box::new(Slow {
                delay: Duration::from_millis(300),
                sizes: Arc::default(),
            }),
            1,
            Duration::ZERO,
        );
        let t = Instant::now();
        for i in 0..20 {
            b.submit(Box::new(move || Ok(vec![i as f32])), Box::new(|_| {}));
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "submit blocked: {:?}",
            t.elapsed()
        );
        // Dropping the batcher answers what is still queued and ends the thread.
        drop(b);
    }
}
