//! Single use of nonces: the replay guard, in process ([`MemoryReplay`]) or
//! shared by the nodes of a cluster ([`RedisReplay`]).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// Why the guard could not decide; the service answers 503 (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The in-memory set is at its hard limit with no expired entry to drop.
    #[error("replay cache is full")]
    Full,
    /// The shared engine could not be reached.
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
}

/// Records nonce ids until they expire.
#[async_trait]
pub trait ReplayGuard: Send + Sync + 'static {
    /// `Ok(true)` the first time `id` is presented before `expires_at`,
    /// `Ok(false)` on any later use.
    async fn first_use(&self, id: [u8; 16], expires_at: i64, now: i64)
    -> Result<bool, ReplayError>;

    /// Whether the guard can answer now (`/readyz`); the in-process guard
    /// always can.
    async fn ping(&self) -> Result<(), ReplayError> {
        Ok(())
    }
}

/// The embedded replay guard: a bounded in-process set in two generations.
///
/// Every nonce expires at most one nonce lifetime (`period`) after it is
/// first presented. Ids go into the current generation; once per period the
/// current generation becomes the previous one and the previous one is
/// dropped, so an id is kept for at least one full period after its use and
/// forgetting is O(1) (no scan under the lock). Together the two generations
/// hold at most `capacity` ids; beyond that the guard refuses (fail closed).
#[derive(Debug)]
pub struct MemoryReplay {
    state: Mutex<Generations>,
    capacity: usize,
    period: i64,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<[u8; 16], i64>,
    previous: HashMap<[u8; 16], i64>,
    rotated_at: Option<i64>,
}

impl MemoryReplay {
    /// A guard holding at most `capacity` ids, for nonces that live at most
    /// `period_secs` seconds.
    #[must_use]
    pub fn new(capacity: usize, period_secs: u64) -> Self {
        Self {
            state: Mutex::new(Generations::default()),
            capacity: capacity.max(1),
            period: i64::try_from(period_secs.max(1)).unwrap_or(i64::MAX),
        }
    }
}

#[async_trait]
impl ReplayGuard for MemoryReplay {
    async fn first_use(
        &self,
        id: [u8; 16],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        let (answer, forgotten) = {
            let mut g = self
                .state
                .lock()
                .map_err(|_| ReplayError::Unavailable("poisoned".into()))?;
            let since = now.saturating_sub(*g.rotated_at.get_or_insert(now));
            let mut forgotten = Vec::new();
            if since >= self.period.saturating_mul(2) {
                forgotten.push(std::mem::take(&mut g.previous));
                forgotten.push(std::mem::take(&mut g.current));
                g.rotated_at = Some(now);
            } else if since >= self.period {
                let current = std::mem::take(&mut g.current);
                forgotten.push(std::mem::replace(&mut g.previous, current));
                g.rotated_at = Some(now);
            }
            let seen = g.current.get(&id).or_else(|| g.previous.get(&id));
            let answer = if seen.is_some_and(|exp| *exp > now) {
                Ok(false)
            } else if g.current.len() + g.previous.len() >= self.capacity {
                Err(ReplayError::Full)
            } else {
                g.current.insert(id, expires_at);
                Ok(true)
            };
            (answer, forgotten)
        };
        // Freeing a large generation takes milliseconds: never under the lock,
        // and off the async workers when there is a runtime.
        if forgotten.iter().any(|m| m.capacity() > 4096)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn_blocking(move || drop(forgotten));
        }
        answer
    }
}

/// The cluster replay guard: one Redis key per presented nonce,
/// `SET {prefix}n:{hex id} 1 NX PX {ms until expiry}`, so every node sees the
/// same set and Redis forgets each id when its nonce expires.
///
/// **Data loss.** Redis may lose its keys (a restart without persistence, a
/// failover to an empty replica); a nonce used before the loss would then be
/// accepted again. So the guard keeps one more key, `{prefix}replay-epoch`:
/// the time from which this Redis data set has recorded every use. It is
/// read in the same script as the `SET NX`; when it is missing (the data set
/// is new, or was lost), the script sets it to now. A nonce issued at or
/// before the epoch (issue time = expiry − nonce lifetime) counts as used:
/// its single use can no longer be proven. Clients simply ask for a new one.
///
/// A Redis failure is an error ([`ReplayError::Unavailable`]): the service
/// answers 503 rather than accept a nonce it could not record.
#[derive(Clone)]
pub struct RedisReplay {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
    nonce_ttl: i64,
    script: ::redis::Script,
}

impl std::fmt::Debug for RedisReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplay")
            .field("prefix", &self.prefix)
            .field("nonce_ttl", &self.nonce_ttl)
            .finish_non_exhaustive()
    }
}

/// KEYS: the nonce key, the epoch key. ARGV: ms until expiry, now (s).
/// Returns {epoch, 1 if the nonce key was new else 0}.
const FIRST_USE_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  redis.call('SET', KEYS[2], ARGV[2])
  epoch = ARGV[2]
end
local fresh = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  fresh = 1
end
return {epoch, fresh}
";

impl RedisReplay {
    /// A guard over `conn` (see [`crate::redis::connect`]) whose keys start
    /// with `prefix` (e.g. `genuine:`), for nonces that live `nonce_ttl_secs`
    /// (every node of a cluster must use the same lifetime).
    #[must_use]
    pub fn new(
        conn: ::redis::aio::ConnectionManager,
        prefix: impl Into<String>,
        nonce_ttl_secs: u64,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            nonce_ttl: i64::try_from(nonce_ttl_secs).unwrap_or(i64::MAX),
            script: ::redis::Script::new(FIRST_USE_SCRIPT),
        }
    }

    fn key(&self, id: &[u8; 16]) -> String {
        format!("{}n:{}", self.prefix, data_encoding::HEXLOWER.encode(id))
    }

    fn epoch_key(&self) -> String {
        format!("{}replay-epoch", self.prefix)
    }

    /// Starts the replay set's epoch at `at` (Unix seconds) unless it has
    /// one; returns the epoch in force. A node calls this at start, so that
    /// nonces issued after it are not refused by a lazily created epoch.
    ///
    /// # Errors
    /// [`ReplayError::Unavailable`] if Redis fails.
    pub async fn start_epoch(&self, at: i64) -> Result<i64, ReplayError> {
        let mut conn = self.conn.clone();
        let _: Option<String> = ::redis::cmd("SET")
            .arg(self.epoch_key())
            .arg(at)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        ::redis::cmd("GET")
            .arg(self.epoch_key())
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))
    }
}

fn unavailable(e: &::redis::RedisError) -> ReplayError {
    ReplayError::Unavailable(crate::redis::describe(e))
}

#[async_trait]
impl ReplayGuard for RedisReplay {
    async fn first_use(
        &self,
        id: [u8; 16],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        let ttl_ms = expires_at.saturating_sub(now).saturating_mul(1000).max(1);
        let (epoch, fresh): (i64, i64) = self
            .script
            .key(self.key(&id))
            .key(self.epoch_key())
            .arg(ttl_ms)
            .arg(now)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        let issued_at = expires_at.saturating_sub(self.nonce_ttl);
        if issued_at <= epoch {
            tracing::warn!(
                epoch,
                issued_at,
                "nonce issued before the replay set's epoch (Redis lost its data?): refused"
            );
            return Ok(false);
        }
        Ok(fresh == 1)
    }

    async fn ping(&self) -> Result<(), ReplayError> {
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn once_then_refused_bounded_and_forgotten_after_two_periods() {
        let g = MemoryReplay::new(2, 60);
        assert_eq!(g.first_use([1; 16], 60, 0).await, Ok(true));
        assert_eq!(g.first_use([1; 16], 60, 59).await, Ok(false));
        assert_eq!(g.first_use([2; 16], 70, 10).await, Ok(true));
        assert_eq!(
            g.first_use([3; 16], 70, 10).await,
            Err(ReplayError::Full),
            "fail closed"
        );
        // One period later [1] and [2] are in the previous generation: still refused.
        assert_eq!(g.first_use([2; 16], 70, 65).await, Ok(false));
        assert_eq!(g.first_use([3; 16], 125, 65).await, Err(ReplayError::Full));
        // Two periods after the first rotation the old generation is gone.
        assert_eq!(g.first_use([3; 16], 185, 125).await, Ok(true));
        assert_eq!(g.first_use([3; 16], 185, 126).await, Ok(false));
        // A long idle gap forgets everything at once.
        assert_eq!(g.first_use([4; 16], 1060, 1000).await, Ok(true));
        assert_eq!(
            g.first_use([3; 16], 1060, 1000).await,
            Ok(true),
            "expired long ago"
        );
    }

    #[tokio::test]
    async fn an_id_is_kept_until_it_expires_whatever_the_rotation_phase() {
        // Nonces expire at most one period after first use; sweep the use
        // time across a rotation and check the id is refused until expiry.
        for offset in 0..60 {
            let g = MemoryReplay::new(1000, 60);
            assert_eq!(
                g.first_use([0; 16], 1, 0).await,
                Ok(true),
                "sets the rotation phase"
            );
            let used = 100 + offset;
            assert_eq!(g.first_use([9; 16], used + 60, used).await, Ok(true));
            for t in used..used + 60 {
                assert_eq!(
                    g.first_use([9; 16], used + 60, t).await,
                    Ok(false),
                    "used {used}, now {t}"
                );
            }
        }
    }
}
