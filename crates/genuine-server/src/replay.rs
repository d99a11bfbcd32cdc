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
/// A Redis failure is an error ([`ReplayError::Unavailable`]): the service
/// answers 503 rather than accept a nonce it could not record.
#[derive(Clone)]
pub struct RedisReplay {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplay")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplay {
    /// A guard over `conn` (see [`crate::redis::connect`]) whose keys start
    /// with `prefix` (e.g. `genuine:`).
    #[must_use]
    pub fn new(conn: ::redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    fn key(&self, id: &[u8; 16]) -> String {
        format!("{}n:{}", self.prefix, data_encoding::HEXLOWER.encode(id))
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
        let reply: ::redis::Value = ::redis::cmd("SET")
            .arg(self.key(&id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        match reply {
            ::redis::Value::Okay => Ok(true),
            ::redis::Value::SimpleString(s) if s == "OK" => Ok(true),
            ::redis::Value::Nil => Ok(false),
            other => Err(ReplayError::Unavailable(format!(
                "unexpected reply to SET NX: {other:?}"
            ))),
        }
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
