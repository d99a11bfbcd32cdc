//! Metrics: Prometheus counters for `/metrics` and per-account counters
//! persisted in the store for `genuine metrics`.
//!
//! Attestation counts are aggregated in memory and flushed to the store every
//! second (and before every read and at shutdown), so one attestation costs
//! no store write. A `kill -9` loses at most the last second of counts.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{CountKey, Store, StoreError};

type Labels = Vec<(&'static str, String)>;

/// Most distinct unknown signal names tracked; further names count as `other`.
const MAX_SIGNAL_NAMES: usize = 64;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    attestations: Family<Labels, Counter>,
    reasons: Family<Labels, Counter>,
    unknown_signals: Family<Labels, Counter>,
    platform: Family<Labels, Counter>,
    challenges: Counter,
    store_errors: Counter,
    shared_state_errors: Counter,
    cache_misses: Counter,
    rate_limited: Counter,
    cache_live: Gauge,
    latency: Histogram,
    challenge_latency: Histogram,
    signal_names: Mutex<std::collections::HashSet<String>>,
    pending: Mutex<HashMap<CountKey, i64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry (one per service instance; nothing global).
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let attestations = Family::<Labels, Counter>::default();
        let reasons = Family::<Labels, Counter>::default();
        let unknown_signals = Family::<Labels, Counter>::default();
        let platform = Family::<Labels, Counter>::default();
        let challenges = Counter::default();
        let store_errors = Counter::default();
        let latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        let challenge_latency = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        let shared_state_errors = Counter::default();
        let cache_misses = Counter::default();
        let rate_limited = Counter::default();
        let cache_live = Gauge::default();
        cache_live.set(1);
        registry.register(
            "genuine_shared_state_errors",
            "Replay guard, rate limiter or unique-device counter failures (Redis in cluster mode)",
            shared_state_errors.clone(),
        );
        registry.register(
            "genuine_account_cache_misses",
            "Account state loads from the store (cache miss, or cache off)",
            cache_misses.clone(),
        );
        registry.register(
            "genuine_challenges_rate_limited",
            "Challenges refused with 429 by the per-address limit",
            rate_limited.clone(),
        );
        registry.register(
            "genuine_account_cache_live",
            "1 while this node may use cached account state (it hears every change), else 0",
            cache_live.clone(),
        );
        registry.register(
            "genuine_challenge_duration_seconds",
            "Server time per challenge",
            challenge_latency.clone(),
        );
        registry.register(
            "genuine_attestations",
            "Attestations by outcome (valid or decoy)",
            attestations.clone(),
        );
        registry.register(
            "genuine_attestation_reasons",
            "Verdict reasons recorded",
            reasons.clone(),
        );
        registry.register(
            "genuine_unknown_signals",
            "Signals the service does not know, by name",
            unknown_signals.clone(),
        );
        registry.register(
            "genuine_platform_attestations",
            "Platform evidence checked, by kind and result (pass, or each failed check)",
            platform.clone(),
        );
        registry.register(
            "genuine_challenges",
            "Challenges issued",
            challenges.clone(),
        );
        registry.register(
            "genuine_store_errors",
            "Store operations that failed",
            store_errors.clone(),
        );
        registry.register(
            "genuine_attest_duration_seconds",
            "Server time per attestation",
            latency.clone(),
        );
        Self {
            registry,
            attestations,
            reasons,
            unknown_signals,
            platform,
            challenges,
            store_errors,
            shared_state_errors,
            cache_misses,
            rate_limited,
            cache_live,
            latency,
            challenge_latency,
            signal_names: Mutex::new(std::collections::HashSet::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a challenge.
    pub fn challenge(&self) {
        self.challenges.inc();
    }

    /// Records a challenge's server time.
    pub fn challenge_seconds(&self, seconds: f64) {
        self.challenge_latency.observe(seconds);
    }

    /// Counts a failure of the replay guard, rate limiter or device counter.
    pub fn shared_state_error(&self) {
        self.shared_state_errors.inc();
    }

    /// Counts an account state load.
    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    /// Counts a challenge refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Whether the account cache is in use.
    pub fn set_cache_live(&self, live: bool) {
        self.cache_live.set(i64::from(live));
    }

    /// Counts a store failure.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// Records an attestation: Prometheus counters now, store counters at the next flush.
    pub fn attestation(
        &self,
        account: Option<&str>,
        valid: bool,
        reasons: &[&'static str],
        hour: i64,
        seconds: f64,
    ) {
        let outcome = if valid { "valid" } else { "decoy" };
        self.attestations
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
        for r in reasons {
            self.reasons
                .get_or_create(&vec![("reason", (*r).to_owned())])
                .inc();
        }
        self.latency.observe(seconds);
        let Some(account) = account else { return };
        if let Ok(mut p) = self.pending.lock() {
            let key = |reason: &str| CountKey {
                account: account.to_owned(),
                hour,
                outcome: outcome.to_owned(),
                reason: reason.to_owned(),
            };
            *p.entry(key("")).or_default() += 1;
            for r in reasons {
                *p.entry(key(r)).or_default() += 1;
            }
        }
    }

    /// Counts one result of a platform evidence check: `pass`, or the code
    /// of one failed check (a fixed set of names: the label set is bounded).
    pub fn platform(&self, kind: &'static str, result: &'static str) {
        self.platform
            .get_or_create(&vec![
                ("kind", kind.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Counts signals the service does not know (bounded label set).
    pub fn unknown_signals<'a>(&self, names: impl Iterator<Item = &'a String>) {
        let Ok(mut known) = self.signal_names.lock() else {
            return;
        };
        for name in names {
            let label = if known.contains(name) {
                name.clone()
            } else if known.len() < MAX_SIGNAL_NAMES
                && genuine_protocol::evidence::is_identifier(name)
                && name.len() <= 64
            {
                known.insert(name.clone());
                name.clone()
            } else {
                "other".to_owned()
            };
            self.unknown_signals
                .get_or_create(&vec![("name", label)])
                .inc();
        }
    }

    /// Writes pending counters to the store.
    ///
    /// # Errors
    /// [`StoreError`] if the write fails; the counts are kept for the next try.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let batch: Vec<(CountKey, i64)> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return Ok(()),
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = store.add_counts(&batch).await {
            self.store_error();
            if let Ok(mut p) = self.pending.lock() {
                for (k, n) in batch {
                    *p.entry(k).or_default() += n;
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
