//! The bounded verified-token cache.
//!
//! Keyed by the whole token text (never a hash of it, so no collision can
//! smuggle claims in). Only tokens that passed every check enter it; a hit
//! costs a lookup and the `exp` check instead of a signature verification.
//! The size limit is hard: when full, expired entries are dropped, and if the
//! cache is still full it is cleared (a burst of distinct tokens costs
//! verifications, never memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::Claims;

#[derive(Debug)]
pub(crate) struct TokenCache {
    map: Mutex<HashMap<Box<str>, Arc<Claims>>>,
    capacity: usize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
        }
    }

    /// The cached claims of `token`, if it was verified before.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Claims>> {
        self.map.lock().ok()?.get(token).cloned()
    }

    /// Forgets `token` (it expired).
    pub(crate) fn remove(&self, token: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(token);
        }
    }

    /// Remembers a verified token; `now` and `leeway` decide what has expired.
    pub(crate) fn insert(&self, token: &str, claims: Arc<Claims>, now: i64, leeway: i64) {
        let Ok(mut m) = self.map.lock() else { return };
        if m.len() >= self.capacity {
            m.retain(|_, c| now < c.exp.saturating_add(leeway));
            if m.len() >= self.capacity {
                m.clear();
            }
        }
        m.insert(token.into(), claims);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: None,
            iat: None,
            exp,
            nbf: None,
            jti: None,
            did: None,
            arc: None,
            pay: None,
            ip: None,
        })
    }

    #[test]
    fn never_exceeds_its_capacity() {
        let c = TokenCache::new(3);
        for i in 0..100 {
            c.insert(&format!("t{i}"), claims(1_000), 0, 0);
            assert!(c.len() <= 3);
        }
        // Expired entries go first, live ones stay.
        let c = TokenCache::new(2);
        c.insert("old", claims(10), 0, 0);
        c.insert("live", claims(1_000), 0, 0);
        c.insert("new", claims(1_000), 20, 0);
        assert!(c.get("old").is_none() && c.get("live").is_some() && c.get("new").is_some());
    }
}
