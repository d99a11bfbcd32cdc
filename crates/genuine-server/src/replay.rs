//! Single use of nonces: the replay guard.

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
}

/// The embedded replay guard: a bounded in-process set.
#[derive(Debug)]
pub struct MemoryReplay {
    seen: Mutex<HashMap<[u8; 16], i64>>,
    capacity: usize,
}

impl MemoryReplay {
    /// A guard holding at most `capacity` live nonces.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
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
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| ReplayError::Unavailable("poisoned".into()))?;
        if let Some(exp) = seen.get(&id)
            && *exp > now
        {
            return Ok(false);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, exp| *exp > now);
            if seen.len() >= self.capacity {
                return Err(ReplayError::Full);
            }
        }
        seen.insert(id, expires_at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn once_then_refused_and_bounded() {
        let g = MemoryReplay::new(2);
        assert_eq!(g.first_use([1; 16], 100, 0).await, Ok(true));
        assert_eq!(g.first_use([1; 16], 100, 50).await, Ok(false));
        assert_eq!(g.first_use([2; 16], 10, 0).await, Ok(true));
        assert_eq!(g.first_use([3; 16], 100, 5).await, Err(ReplayError::Full));
        // Once [2] has expired there is room again.
        assert_eq!(g.first_use([3; 16], 100, 20).await, Ok(true));
        assert_eq!(g.first_use([1; 16], 100, 20).await, Ok(false));
    }
}
