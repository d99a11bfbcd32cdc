//! CPU time of this process's threads, grouped by who they work for, read from
//! `/proc/self/task/*/schedstat` (nanoseconds on a CPU), and of the whole
//! machine from `/proc/stat`, so that the report shows how much CPU other
//! processes took during a measurement. Linux only; elsewhere every reading
//! is `None` and the report says so.

use std::time::Duration;

/// Thread-name prefix of the server runtime's threads.
pub(crate) const SERVER_THREAD: &str = "lb-server";
/// Thread-name prefix of the load generator runtime's threads.
pub(crate) const CLIENT_THREAD: &str = "lb-client";

/// Length of a `/proc/stat` tick: `USER_HZ` is 100 on every Linux ABI this runs on.
const TICK: Duration = Duration::from_millis(10);

/// CPU time consumed so far, by group.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuTimes {
    /// Server runtime threads and SQLite worker threads.
    pub(crate) server: Duration,
    /// Load generator threads.
    pub(crate) client: Duration,
    /// Everything else (the main thread).
    pub(crate) other: Duration,
    /// Busy time of all CPUs of the machine, every process included.
    pub(crate) machine_busy: Duration,
    /// Time the hypervisor ran something else on our virtual CPUs.
    pub(crate) machine_steal: Duration,
}

impl CpuTimes {
    /// The CPU time spent between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            server: self.server.saturating_sub(earlier.server),
            client: self.client.saturating_sub(earlier.client),
            other: self.other.saturating_sub(earlier.other),
            machine_busy: self.machine_busy.saturating_sub(earlier.machine_busy),
            machine_steal: self.machine_steal.saturating_sub(earlier.machine_steal),
        }
    }

    /// This process's CPU time.
    pub(crate) fn process(&self) -> Duration {
        self.server + self.client + self.other
    }

    /// CPU time of other processes (the machine's busy time minus ours).
    pub(crate) fn foreign(&self) -> Duration {
        self.machine_busy.saturating_sub(self.process())
    }
}

/// Busy and steal time of the whole machine, from the `cpu` line of `/proc/stat`.
fn machine() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    let ticks = |n: u64| TICK * u32::try_from(n).unwrap_or(u32::MAX);
    Some((ticks(busy), ticks(get(7))))
}

/// Reads the CPU time of every live thread of this process.
pub(crate) fn read() -> Option<CpuTimes> {
    let (machine_busy, machine_steal) = machine()?;
    let mut t = CpuTimes {
        machine_busy,
        machine_steal,
        ..CpuTimes::default()
    };
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = entry.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // The thread ended meanwhile.
        };
        let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) else {
            continue;
        };
        let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
        let d = Duration::from_nanos(ns);
        let comm = comm.trim();
        if comm.starts_with(SERVER_THREAD) || comm.starts_with("sqlx-sqlite") {
            t.server += d;
        } else if comm.starts_with(CLIENT_THREAD) {
            t.client += d;
        } else {
            t.other += d;
        }
    }
    Some(t)
}
