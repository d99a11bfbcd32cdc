//! Unique devices per account and hour, day and month, estimated with
//! HyperLogLog sketches.
//!
//! Attestations are observed without I/O (a bounded buffer) and written out
//! by [`DeviceCounter::flush`], which the service calls every second and at
//! shutdown. Adding a device to a sketch is idempotent, so a flush that
//! failed half-way is simply repeated. [`MemoryDevices`] keeps its sketches
//! in process and persists them in the [`Store`]; [`RedisDevices`] keeps
//! them in Redis (`PFADD`/`PFCOUNT`), shared by every node.
//!
//! Buckets are UTC: the hour and day since the Unix epoch, and the month as
//! `year * 12 + month - 1` of the civil date.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cardinality_estimator::CardinalityEstimator;

use crate::redis::SharedError;
use crate::store::Store;

/// Why unique devices could not be recorded or counted (the service answers
/// 503 to a query; a failed flush is retried by the next one).
pub type DeviceCountError = SharedError;

/// Default cap on buffered observations.
pub const DEFAULT_MAX_PENDING: usize = 100_000;
/// Default cap on sketches [`MemoryDevices`] keeps in memory.
pub const DEFAULT_MAX_SKETCHES: usize = 10_000;
/// Device ids longer than this are counted by their SHA-256 (bounds memory).
const MAX_ID_LEN: usize = 128;

/// A counting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// A UTC hour.
    Hour,
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Self; 3] = [Self::Hour, Self::Day, Self::Month];

    /// The name used in the store and the API: `hour`, `day` or `month`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The period named `name` (`hour`, `day` or `month`), the inverse of
    /// [`Period::as_str`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The bucket holding `unix_secs`: hours or days since the epoch, or
    /// `year * 12 + month - 1` (months since year 0) of the UTC date.
    #[must_use]
    pub fn bucket(self, unix_secs: i64) -> i64 {
        match self {
            Self::Hour => unix_secs.div_euclid(3600),
            Self::Day => unix_secs.div_euclid(86_400),
            Self::Month => {
                let (year, month, _) = civil_from_days(unix_secs.div_euclid(86_400));
                year * 12 + i64::from(month) - 1
            }
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Hour => "h",
            Self::Day => "d",
            Self::Month => "m",
        }
    }

    /// How long Redis keeps a bucket after its last write.
    fn redis_ttl_secs(self) -> i64 {
        match self {
            Self::Hour => 3 * 86_400,
            Self::Day => 400 * 86_400,
            Self::Month => (5 * 365 + 2) * 86_400,
        }
    }
}

/// The proleptic Gregorian date `(year, month 1..=12, day 1..=31)` of a day
/// number counted from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // month and day are in range by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Counts unique devices.
#[async_trait]
pub trait DeviceCounter: Send + Sync + 'static {
    /// Records that a device attested (buffered in memory; never blocks on
    /// I/O).
    fn observe(&self, account: &str, device_id: &str, now: i64);

    /// Writes buffered observations out (called every second by the service
    /// and at shutdown). On error the buffer is kept for the next flush,
    /// bounded: beyond its cap the oldest observations are dropped and
    /// counted in [`DeviceCounter::dropped`].
    async fn flush(&self) -> Result<(), DeviceCountError>;

    /// Estimated unique devices of `account` in one bucket (see
    /// [`Period::bucket`]), including observations not yet flushed.
    async fn unique(
        &self,
        account: &str,
        period: Period,
        bucket: i64,
    ) -> Result<u64, DeviceCountError>;

    /// Observations dropped so far because the buffer was full (a metric).
    fn dropped(&self) -> u64 {
        0
    }
}

/// One buffered observation.
#[derive(Debug, Clone)]
struct Observation {
    account: String,
    device: String,
    now: i64,
}

/// The bounded buffer of observations, oldest first.
#[derive(Debug)]
struct Pending {
    queue: Mutex<VecDeque<Observation>>,
    cap: usize,
    dropped: AtomicU64,
}

impl Pending {
    fn new(cap: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    fn push(&self, account: &str, device_id: &str, now: i64) {
        let device = if device_id.len() > MAX_ID_LEN {
            let digest = ring::digest::digest(&ring::digest::SHA256, device_id.as_bytes());
            format!("sha256:{}", data_encoding::HEXLOWER.encode(digest.as_ref()))
        } else {
            device_id.to_owned()
        };
        let o = Observation {
            account: account.to_owned(),
            device,
            now,
        };
        // A poisoned lock only means another thread panicked mid-push; the
        // queue itself is still a valid queue.
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() >= self.cap {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(o);
    }

    fn take(&self) -> VecDeque<Observation> {
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts observations that could not be written back in front of those
    /// that arrived meanwhile, dropping the oldest beyond the cap.
    fn restore(&self, mut older: VecDeque<Observation>) {
        if older.is_empty() {
            return;
        }
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        older.append(&mut q);
        let excess = older.len().saturating_sub(self.cap);
        if excess > 0 {
            older.drain(..excess);
            self.dropped.fetch_add(excess as u64, Ordering::Relaxed);
        }
        *q = older;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SketchKey {
    account: String,
    period: Period,
    bucket: i64,
}

type Sketch = CardinalityEstimator<str>;

struct Cached {
    sketch: Sketch,
    dirty: bool,
}

/// The serialized form's version tag (the crate's serde form, as JSON: the
/// format that crate fuzzes its deserializer with).
const SKETCH_V1: &[u8] = b"ce1:";

fn encode(sketch: &Sketch) -> Result<Vec<u8>, SharedError> {
    let mut out = SKETCH_V1.to_vec();
    serde_json::to_writer(&mut out, sketch)
        .map_err(|e| SharedError::Unavailable(format!("cannot encode a sketch: {e}")))?;
    Ok(out)
}

fn decode(bytes: &[u8]) -> Option<Sketch> {
    serde_json::from_slice(bytes.strip_prefix(SKETCH_V1)?).ok()
}

/// The embedded device counter: HyperLogLog++ sketches in process
/// (`cardinality-estimator`, precision 12: about 1.6 % standard error,
/// practically exact up to 128 devices, at most about 3 KiB per sketch in
/// memory and about 8 KiB stored), persisted
/// through [`Store::put_sketch`].
///
/// A sketch is loaded from the store on first use, kept while its bucket is
/// current, and written back by [`DeviceCounter::flush`] when it changed.
/// Memory is bounded: at most `max_sketches` sketches are kept (clean ones
/// of past buckets are evicted first, then any clean one; a dirty one is
/// kept until written), and at most `max_pending` observations wait for a
/// flush. An undecodable stored sketch is logged and replaced by a new one.
pub struct MemoryDevices {
    store: Arc<dyn Store>,
    pending: Pending,
    cache: tokio::sync::Mutex<HashMap<SketchKey, Cached>>,
    max_sketches: usize,
    latest: AtomicI64,
}

impl std::fmt::Debug for MemoryDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDevices")
            .field("max_sketches", &self.max_sketches)
            .field("max_pending", &self.pending.cap)
            .finish_non_exhaustive()
    }
}

impl MemoryDevices {
    /// A counter persisting in `store`, with the default limits.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_limits(store, DEFAULT_MAX_SKETCHES, DEFAULT_MAX_PENDING)
    }

    /// A counter keeping at most `max_sketches` sketches in memory and
    /// buffering at most `max_pending` observations.
    #[must_use]
    pub fn with_limits(store: Arc<dyn Store>, max_sketches: usize, max_pending: usize) -> Self {
        Self {
            store,
            pending: Pending::new(max_pending),
            cache: tokio::sync::Mutex::new(HashMap::new()),
            max_sketches: max_sketches.max(Period::ALL.len()),
            latest: AtomicI64::new(i64::MIN),
        }
    }

    async fn load(&self, key: &SketchKey) -> Result<Sketch, SharedError> {
        let stored = self
            .store
            .sketch(&key.account, key.period.as_str(), key.bucket)
            .await?;
        Ok(match stored {
            None => Sketch::new(),
            Some(bytes) => decode(&bytes).unwrap_or_else(|| {
                tracing::warn!(
                    account = %key.account,
                    period = key.period.as_str(),
                    bucket = key.bucket,
                    "stored device sketch cannot be decoded; starting a new one"
                );
                Sketch::new()
            }),
        })
    }

    /// Makes room for one more sketch: drops clean sketches of past buckets,
    /// then any clean one. `false` if every sketch is dirty.
    fn make_room(&self, cache: &mut HashMap<SketchKey, Cached>) -> bool {
        if cache.len() < self.max_sketches {
            return true;
        }
        self.evict_past(cache);
        if cache.len() < self.max_sketches {
            return true;
        }
        let victim = cache.iter().find(|(_, c)| !c.dirty).map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                cache.remove(&k);
                true
            }
            None => false,
        }
    }

    /// Writes every changed sketch to the store; stops at the first error
    /// (the rest stay dirty for the next flush).
    async fn write_dirty(&self, cache: &mut HashMap<SketchKey, Cached>) -> Result<(), SharedError> {
        for (key, c) in cache.iter_mut().filter(|(_, c)| c.dirty) {
            let bytes = encode(&c.sketch)?;
            self.store
                .put_sketch(&key.account, key.period.as_str(), key.bucket, &bytes)
                .await?;
            c.dirty = false;
        }
        Ok(())
    }

    /// Drops clean sketches whose bucket is no longer current.
    fn evict_past(&self, cache: &mut HashMap<SketchKey, Cached>) {
        let latest = self.latest.load(Ordering::Relaxed);
        if latest == i64::MIN {
            return;
        }
        cache.retain(|k, c| c.dirty || k.bucket >= k.period.bucket(latest));
    }
}

#[async_trait]
impl DeviceCounter for MemoryDevices {
    fn observe(&self, account: &str, device_id: &str, now: i64) {
        self.latest.fetch_max(now, Ordering::Relaxed);
        self.pending.push(account, device_id, now);
    }

    async fn flush(&self) -> Result<(), DeviceCountError> {
        let mut cache = self.cache.lock().await;
        let batch = self.pending.take();
        let mut first_error: Option<SharedError> = None;
        let mut unapplied = VecDeque::new();
        for o in batch {
            let mut applied = true;
            for period in Period::ALL {
                let key = SketchKey {
                    account: o.account.clone(),
                    period,
                    bucket: period.bucket(o.now),
                };
                if !cache.contains_key(&key) {
                    if first_error.is_some() {
                        applied = false;
                        continue;
                    }
                    if !self.make_room(&mut cache) {
                        // Every sketch held is unwritten: write them now,
                        // then they may be evicted.
                        let written = self.write_dirty(&mut cache).await;
                        if let Err(e) = written.and_then(|()| {
                            if self.make_room(&mut cache) {
                                Ok(())
                            } else {
                                Err(SharedError::Unavailable(
                                    "no room for a device sketch".into(),
                                ))
                            }
                        }) {
                            first_error = Some(e);
                            applied = false;
                            continue;
                        }
                    }
                    match self.load(&key).await {
                        Ok(sketch) => {
                            cache.insert(
                                key.clone(),
                                Cached {
                                    sketch,
                                    dirty: false,
                                },
                            );
                        }
                        Err(e) => {
                            first_error = Some(e);
                            applied = false;
                            continue;
                        }
                    }
                }
                if let Some(c) = cache.get_mut(&key) {
                    c.sketch.insert(&o.device);
                    c.dirty = true;
                }
            }
            // Adding a device twice is harmless, so a partly applied
            // observation is kept whole for the next flush.
            if !applied {
                unapplied.push_back(o);
            }
        }
        self.pending.restore(unapplied);
        if let Err(e) = self.write_dirty(&mut cache).await {
            first_error.get_or_insert(e);
        }
        self.evict_past(&mut cache);
        while cache.len() > self.max_sketches {
            let Some(k) = cache.iter().find(|(_, c)| !c.dirty).map(|(k, _)| k.clone()) else {
                break;
            };
            cache.remove(&k);
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn unique(
        &self,
        account: &str,
        period: Period,
        bucket: i64,
    ) -> Result<u64, DeviceCountError> {
        self.flush().await?;
        let key = SketchKey {
            account: account.to_owned(),
            period,
            bucket,
        };
        let cache = self.cache.lock().await;
        let estimate = match cache.get(&key) {
            Some(c) => c.sketch.estimate(),
            None => {
                drop(cache);
                self.load(&key).await?.estimate()
            }
        };
        Ok(estimate as u64)
    }

    fn dropped(&self) -> u64 {
        self.pending.dropped.load(Ordering::Relaxed)
    }
}

/// The cluster device counter: Redis HyperLogLogs,
/// `PFADD {prefix}u:{len(account)}:{account}:{h|d|m}:{bucket} <ids…>` in one
/// pipeline per flush, each key's expiry renewed (hours 3 days, days 400
/// days, months 5 years). The account is length-prefixed so that no account
/// name can reach another account's keys.
pub struct RedisDevices {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
    pending: Pending,
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RedisDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDevices")
            .field("prefix", &self.prefix)
            .field("max_pending", &self.pending.cap)
            .finish_non_exhaustive()
    }
}

impl RedisDevices {
    /// A counter over `conn` (see [`crate::redis::connect`]) whose keys
    /// start with `prefix`, buffering at most [`DEFAULT_MAX_PENDING`]
    /// observations.
    #[must_use]
    pub fn new(conn: ::redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        Self::with_limit(conn, prefix, DEFAULT_MAX_PENDING)
    }

    /// A counter buffering at most `max_pending` observations.
    #[must_use]
    pub fn with_limit(
        conn: ::redis::aio::ConnectionManager,
        prefix: impl Into<String>,
        max_pending: usize,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            pending: Pending::new(max_pending),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn key(&self, account: &str, period: Period, bucket: i64) -> String {
        format!(
            "{}u:{}:{}:{}:{}",
            self.prefix,
            account.len(),
            account,
            period.code(),
            bucket
        )
    }
}

#[async_trait]
impl DeviceCounter for RedisDevices {
    fn observe(&self, account: &str, device_id: &str, now: i64) {
        self.pending.push(account, device_id, now);
    }

    async fn flush(&self) -> Result<(), DeviceCountError> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch = self.pending.take();
        if batch.is_empty() {
            return Ok(());
        }
        let mut groups: HashMap<String, (Period, HashSet<&str>)> = HashMap::new();
        for o in &batch {
            for period in Period::ALL {
                groups
                    .entry(self.key(&o.account, period, period.bucket(o.now)))
                    .or_insert_with(|| (period, HashSet::new()))
                    .1
                    .insert(o.device.as_str());
            }
        }
        let mut pipe = ::redis::pipe();
        for (key, (period, ids)) in &groups {
            pipe.cmd("PFADD")
                .arg(key)
                .arg(ids.iter().collect::<Vec<_>>())
                .ignore();
            pipe.expire(key, period.redis_ttl_secs()).ignore();
        }
        let result: Result<(), _> = pipe.query_async(&mut self.conn.clone()).await;
        drop(groups);
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                // PFADD is idempotent: whatever got through is re-sent.
                self.pending.restore(batch);
                Err(e.into())
            }
        }
    }

    async fn unique(
        &self,
        account: &str,
        period: Period,
        bucket: i64,
    ) -> Result<u64, DeviceCountError> {
        self.flush().await?;
        let n: u64 = ::redis::cmd("PFCOUNT")
            .arg(self.key(account, period, bucket))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    fn dropped(&self) -> u64 {
        self.pending.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days from 1970-01-01 to a date, by counting (slow, obviously right).
    fn days_from_civil_slow(y: i64, m: u32, d: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut days = 0i64;
        for year in 1970..y {
            days += if leap(year) { 366 } else { 365 };
        }
        for month in 1..m {
            days += len(y, month);
        }
        days + i64::from(d) - 1
    }

    #[test]
    fn civil_dates_match_a_slow_count() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (2024, 12, 31),
            (2026, 11, 22),
            (2100, 3, 1),
        ] {
            let days = days_from_civil_slow(y, m, d);
            assert_eq!(civil_from_days(days), (y, m, d));
        }
        // Every day of 1999..=2101 round-trips in order.
        let first = days_from_civil_slow(1999, 1, 1);
        let mut prev = civil_from_days(first - 1);
        for days in first..first + 103 * 366 {
            let now = civil_from_days(days);
            assert!(now > prev, "{now:?} after {prev:?}");
            assert_eq!(days_from_civil_slow(now.0, now.1, now.2), days);
            prev = now;
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn buckets() {
        // 2026-11-22T10:00:00Z
        let t = 1_795_341_600;
        assert_eq!(Period::Hour.bucket(t), t / 3600);
        assert_eq!(Period::Day.bucket(t), t / 86_400);
        assert_eq!(Period::Month.bucket(t), 2026 * 12 + 10);
        assert_eq!(Period::Month.bucket(0), 1970 * 12);
        assert_eq!(Period::Month.bucket(-1), 1969 * 12 + 11);
        assert_eq!(Period::Hour.bucket(-1), -1);
        for p in Period::ALL {
            assert_eq!(Period::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Period::from_name("week"), None);
        // Extremes do not overflow.
        let _ = Period::Month.bucket(i64::MAX);
        let _ = Period::Month.bucket(i64::MIN);
    }

    #[test]
    fn pending_drops_the_oldest_beyond_its_cap() {
        let p = Pending::new(2);
        p.push("a", "1", 0);
        p.push("a", "2", 0);
        p.push("a", "3", 0);
        assert_eq!(p.dropped.load(Ordering::Relaxed), 1);
        let batch = p.take();
        assert_eq!(batch.len(), 2);
        p.push("a", "4", 0);
        p.restore(batch);
        let q = p.take();
        let ids: Vec<_> = q.iter().map(|o| o.device.as_str()).collect();
        assert_eq!(ids, ["3", "4"], "older restored ahead, oldest dropped");
        assert_eq!(p.dropped.load(Ordering::Relaxed), 2);
        p.push("a", &"x".repeat(1000), 0);
        assert_eq!(p.take()[0].device.len(), "sha256:".len() + 64);
    }

    #[test]
    fn sketches_round_trip() {
        let mut s = Sketch::new();
        for n in [0, 2, 100, 5000] {
            for i in 0..n {
                s.insert(&format!("d{i}"));
            }
            let bytes = encode(&s).unwrap();
            let back = decode(&bytes).unwrap();
            assert_eq!(back.estimate(), s.estimate());
        }
        assert!(decode(b"ce1:[1,[2,3]]").is_none());
        assert!(decode(b"garbage").is_none());
    }
}
