//! CPU time of this process's threads, grouped by who they work for, read from
//! `/proc/self/task/*/schedstat` (nanoseconds on a CPU); of the PostgreSQL and
//! Redis processes of this machine (`/proc/*/stat` of every process named
//! `postgres` or `redis-server`: the cluster's shared engines); and of the
//! whole machine from `/proc/stat`, so that the report shows how much CPU
//! other processes took during a measurement. Linux only; elsewhere every
//! reading is `None` and the report says so.

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
    /// Everything else (the main thread, the memory sampler).
    pub(crate) other: Duration,
    /// PostgreSQL and Redis processes (any, not only the cluster's).
    pub(crate) engines: Duration,
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
            engines: self.engines.saturating_sub(earlier.engines),
            machine_busy: self.machine_busy.saturating_sub(earlier.machine_busy),
            machine_steal: self.machine_steal.saturating_sub(earlier.machine_steal),
        }
    }

    /// This process's CPU time.
    pub(crate) fn process(&self) -> Duration {
        self.server + self.client + self.other
    }

    /// CPU time of other processes (the machine's busy time minus ours and
    /// the engines').
    pub(crate) fn foreign(&self) -> Duration {
        self.machine_busy
            .saturating_sub(self.process())
            .saturating_sub(self.engines)
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
    Some((ticks(busy), ticks(get(7))))
}

fn ticks(n: u64) -> Duration {
    TICK * u32::try_from(n).unwrap_or(u32::MAX)
}

/// User + system time of every process named `postgres` or `redis-server`
/// (from `/proc/<pid>/stat`, in ticks). A process that ended between two
/// readings drops out; the cluster's connections live through a window.
fn engines() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let mut total = 0u64;
    for entry in dir.flatten() {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        if comm != "postgres" && comm != "redis-server" {
            continue;
        }
        // After ')': state(3) ppid(4) ... utime(14) stime(15).
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += get(11) + get(12);
    }
    ticks(total)
}

/// Reads the CPU time of every live thread of this process.
pub(crate) fn read() -> Option<CpuTimes> {
    let (machine_busy, machine_steal) = machine()?;
    let mut t = CpuTimes {
        machine_busy,
        machine_steal,
        engines: engines(),
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
