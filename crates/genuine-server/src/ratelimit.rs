//! Per-client rate limit on challenges: a fixed window per client address.
//!
//! Time is cut into windows of [`RateLimit::window_secs`] from the Unix epoch;
//! a client may ask for [`RateLimit::limit`] challenges per window and is
//! then told to retry when the window ends. A client is one IPv4 address or
//! one IPv6 `/64` (a single subscriber is given a whole `/64`, so limiting
//! single IPv6 addresses would limit nothing); IPv4-mapped IPv6 addresses
//! count as IPv4.
//!
//! [`MemoryRateLimiter`] counts in process (embedded mode, bounded memory);
//! [`RedisRateLimiter`] counts in Redis so that every node of a cluster
//! applies one limit. Errors are returned, never a silent `Allow`: the
//! service answers 503 (fail closed).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::redis::SharedError;

/// Why a rate decision could not be made (the service answers 503).
pub type RateLimitError = SharedError;

/// A fixed-window limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per client and window.
    pub limit: u32,
    /// The window length in seconds (at least 1 is used).
    pub window_secs: u32,
}

impl RateLimit {
    fn window_ms(self) -> i64 {
        i64::from(self.window_secs.max(1)) * 1000
    }

    /// The index of the window holding `now_ms`.
    fn window(self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.window_ms())
    }

    /// Milliseconds from `now_ms` to the end of its window (at least 1).
    fn remaining_ms(self, now_ms: i64) -> i64 {
        (self.window_ms() - now_ms.rem_euclid(self.window_ms())).max(1)
    }

    /// The decision for the `count`-th request of a window.
    fn decide(self, count: u64, now_ms: i64) -> RateDecision {
        if count <= u64::from(self.limit) {
            RateDecision::Allow
        } else {
            let ms = u64::try_from(self.remaining_ms(now_ms)).unwrap_or(1);
            RateDecision::Limited {
                retry_after_secs: ms.div_ceil(1000).max(1),
            }
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the limit.
    Allow,
    /// Over the limit until the window ends.
    Limited {
        /// Seconds until the window ends (at least 1): the `Retry-After`.
        retry_after_secs: u64,
    },
}

/// Counts requests per client.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts a request of `client` at `now_ms` (Unix milliseconds) and
    /// decides on it.
    async fn check(&self, client: IpAddr, now_ms: i64) -> Result<RateDecision, RateLimitError>;
}

/// The unit a limit applies to: an IPv4 address or an IPv6 `/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Net64(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6Net64((u128::from(v6) >> 64) as u64),
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            Self::V6Net64(n) => {
                write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(*n) << 64))
            }
        }
    }
}

/// The embedded rate limiter: counts of the current window in process.
///
/// Memory is bounded: at most `capacity` clients are tracked per window, and
/// the table is dropped whole when the window ends (O(1), no scan). Clients
/// beyond the capacity within one window share a single overflow bucket
/// with the same limit: under a flood of distinct addresses the newcomers
/// are throttled together instead of growing the table or being let through
/// (the limiter never fails open), while clients already tracked keep their
/// own counts. A request stamped in an earlier window than the current one
/// (a late caller) is counted in the current window.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    limit: RateLimit,
    capacity: usize,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    index: Option<i64>,
    counts: HashMap<ClientKey, u32>,
    overflow: u32,
}

impl MemoryRateLimiter {
    /// A limiter applying `limit` to at most `capacity` clients per window.
    #[must_use]
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        Self {
            limit,
            capacity: capacity.max(1),
            state: Mutex::new(Window::default()),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, client: IpAddr, now_ms: i64) -> Result<RateDecision, RateLimitError> {
        let key = ClientKey::of(client);
        let window = self.limit.window(now_ms);
        let (count, old) = {
            let mut w = self
                .state
                .lock()
                .map_err(|_| SharedError::Unavailable("rate limiter lock poisoned".into()))?;
            let mut old = None;
            if w.index.is_none_or(|i| window > i) {
                old = Some(std::mem::take(&mut w.counts));
                w.overflow = 0;
                w.index = Some(window);
            }
            let w = &mut *w;
            let tracked = w.counts.len();
            let count = match w.counts.entry(key) {
                Entry::Occupied(mut c) => {
                    let c = c.get_mut();
                    *c = c.saturating_add(1);
                    *c
                }
                Entry::Vacant(slot) if tracked < self.capacity => *slot.insert(1),
                Entry::Vacant(_) => {
                    w.overflow = w.overflow.saturating_add(1);
                    w.overflow
                }
            };
            (count, old)
        };
        // Freeing a large table takes time: off the async workers.
        if let Some(old) = old.filter(|m| m.capacity() > 4096)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn_blocking(move || drop(old));
        }
        Ok(self.limit.decide(u64::from(count), now_ms))
    }
}

/// The cluster rate limiter: one Redis counter per client and window,
/// `INCR` and `PEXPIRE` in one `MULTI` on `{prefix}rl:{window}:{client}`.
///
/// The counter expires one second after its window ends (the slack absorbs
/// small clock differences between nodes). Redis errors are returned.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
    limit: RateLimit,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter over `conn` (see [`crate::redis::connect`]) whose keys start
    /// with `prefix` (e.g. `genuine:`).
    #[must_use]
    pub fn new(
        conn: ::redis::aio::ConnectionManager,
        prefix: impl Into<String>,
        limit: RateLimit,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            limit,
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, client: IpAddr, now_ms: i64) -> Result<RateDecision, RateLimitError> {
        let key = format!(
            "{}rl:{}:{}",
            self.prefix,
            self.limit.window(now_ms),
            ClientKey::of(client)
        );
        let ttl_ms = self.limit.remaining_ms(now_ms).saturating_add(1000);
        let (count,): (u64,) = ::redis::pipe()
            .atomic()
            .incr(&key, 1)
            .pexpire(&key, ttl_ms)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(self.limit.decide(count, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        assert_eq!(ClientKey::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            ClientKey::of(mapped),
            ClientKey::of(IpAddr::from([192, 0, 2, 7]))
        );
        assert_eq!(ClientKey::of(mapped).to_string(), "192.0.2.7");
    }

    #[test]
    fn retry_after_is_the_rest_of_the_window_rounded_up() {
        let l = RateLimit {
            limit: 1,
            window_secs: 60,
        };
        assert_eq!(l.decide(1, 0), RateDecision::Allow);
        assert_eq!(
            l.decide(2, 0),
            RateDecision::Limited {
                retry_after_secs: 60
            }
        );
        assert_eq!(
            l.decide(2, 59_001),
            RateDecision::Limited {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            l.decide(2, 59_999),
            RateDecision::Limited {
                retry_after_secs: 1
            }
        );
        assert_eq!(l.window(-1), -1, "before the epoch still works");
    }

    #[tokio::test]
    async fn a_full_table_shares_one_overflow_bucket() {
        let l = MemoryRateLimiter::new(
            RateLimit {
                limit: 2,
                window_secs: 60,
            },
            2,
        );
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert_eq!(l.check(ip(1), 0).await, Ok(RateDecision::Allow));
        assert_eq!(l.check(ip(2), 0).await, Ok(RateDecision::Allow));
        // Table full: 3, 4 and 5 share one bucket of 2.
        assert_eq!(l.check(ip(3), 0).await, Ok(RateDecision::Allow));
        assert_eq!(l.check(ip(4), 0).await, Ok(RateDecision::Allow));
        assert!(matches!(
            l.check(ip(5), 0).await,
            Ok(RateDecision::Limited { .. })
        ));
        // Tracked clients keep their own counts.
        assert_eq!(l.check(ip(1), 1).await, Ok(RateDecision::Allow));
        // The next window starts empty.
        assert_eq!(l.check(ip(5), 60_000).await, Ok(RateDecision::Allow));
    }
}
