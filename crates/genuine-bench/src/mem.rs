//! Resident memory of this process: `VmRSS` from `/proc/self/status`, read
//! every [`INTERVAL`] on a thread of its own, so that each phase can report
//! its start, peak and end. The servers under test run in this process, so
//! this is their memory together with the load generator's. Linux only;
//! elsewhere every reading is `None` and the report says `n/a`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the sampler reads `VmRSS`.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// This process's resident set size in bytes, now.
pub(crate) fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory over a window, bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    /// The first reading in the window.
    pub(crate) start: u64,
    /// The highest reading in the window.
    pub(crate) peak: u64,
    /// The last reading in the window.
    pub(crate) end: u64,
}

/// Bytes as MiB.
#[allow(clippy::cast_precision_loss, reason = "a memory size far below 2^52")]
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

type Samples = Arc<Mutex<Vec<(Instant, u64)>>>;

/// Reads `VmRSS` every [`INTERVAL`] until dropped.
pub(crate) struct Sampler {
    samples: Samples,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts the sampling thread.
    pub(crate) fn start() -> Self {
        let samples: Samples = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::Builder::new()
                .name("lb-rss".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(b) = rss_bytes() {
                            push(&samples, Instant::now(), b);
                        }
                        std::thread::sleep(INTERVAL);
                    }
                })
                .ok()
        };
        Self {
            samples,
            stop,
            thread,
        }
    }

    /// Takes a reading now (a phase's first or last) and returns its time.
    pub(crate) fn mark(&self) -> Instant {
        let now = Instant::now();
        if let Some(b) = rss_bytes() {
            push(&self.samples, now, b);
        }
        now
    }

    /// Start, peak and end of the readings taken from `from` to `to`.
    pub(crate) fn window(&self, from: Instant, to: Instant) -> Option<Rss> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let mut inside: Vec<(Instant, u64)> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .copied()
            .collect();
        inside.sort_by_key(|(t, _)| *t);
        Some(Rss {
            start: inside.first()?.1,
            peak: inside.iter().map(|(_, b)| *b).max()?,
            end: inside.last()?.1,
        })
    }

    /// Drops the readings taken before `t` (the sampler's own memory stays
    /// bounded during a long soak).
    pub(crate) fn forget_before(&self, t: Instant) {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(at, _)| *at >= t);
    }
}

fn push(samples: &Samples, t: Instant, bytes: u64) {
    samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((t, bytes));
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
