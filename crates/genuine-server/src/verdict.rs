//! The verdict (protocol §4): a pure function of the account's state, the
//! nonce check, the verified evidence and the time.

use std::collections::HashMap;

use genuine_protocol::evidence::VerifiedEvidence;
use genuine_protocol::measure::{AppDigest, ProofVerifier};
use genuine_protocol::{Reason, ReasonSet};

use crate::policy::Policy;

/// Outcome of the nonce checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// MAC good, not expired, first use.
    Fresh,
    /// Malformed, bad MAC, or for another account or app.
    Invalid,
    /// Expired.
    Expired,
    /// Used before.
    Replayed,
}

/// A registration as the verdict needs it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Registration id.
    pub id: String,
    /// Measurement algorithm.
    pub alg: String,
    /// The digest.
    pub digest: AppDigest,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

/// A device override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAction {
    /// Always passes (developers' devices); reasons are still recorded.
    Allow,
    /// Always fails with `device-blocked`.
    Block,
}

/// What the verdict reads of an account.
#[derive(Debug, Default)]
pub struct VerdictContext<'a> {
    /// The policy.
    pub policy: Policy,
    /// Whether the evidence's API domain exists in the account.
    pub api_known: bool,
    /// Registrations by (app id, platform).
    pub registrations: Option<&'a HashMap<(String, String), Vec<Registration>>>,
    /// Device overrides.
    pub devices: Option<&'a HashMap<String, DeviceAction>>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every reason that applies.
    pub reasons: ReasonSet,
    /// The device is on the allow list.
    pub allowed: bool,
    /// A valid token is issued.
    pub valid: bool,
}

/// Evaluates the verdict. `evidence` is `None` when the signature or payload
/// failed (`evidence-invalid`); `nonce_bytes` are the decoded nonce, used as
/// the measurement key even when the nonce failed, so that every applicable
/// reason is recorded.
#[must_use]
pub fn evaluate(
    ctx: &VerdictContext<'_>,
    nonce: NonceStatus,
    nonce_bytes: Option<&[u8]>,
    evidence: Option<&VerifiedEvidence>,
    now: i64,
) -> Verdict {
    let mut reasons = ReasonSet::empty();
    match nonce {
        NonceStatus::Fresh => {}
        NonceStatus::Invalid => reasons.insert(Reason::NonceInvalid),
        NonceStatus::Expired => reasons.insert(Reason::NonceExpired),
        NonceStatus::Replayed => reasons.insert(Reason::NonceReplayed),
    }
    let Some(ev) = evidence else {
        reasons.insert(Reason::EvidenceInvalid);
        return Verdict {
            reasons,
            allowed: false,
            valid: false,
        };
    };
    if !ctx.api_known {
        reasons.insert(Reason::ApiUnknown);
    }

    // Measurement: every candidate is checked (no early exit), each in constant time.
    let c = &ev.claims;
    let mut active = false;
    let mut expired = false;
    if let (Some(bytes), Some(regs)) = (nonce_bytes, ctx.registrations) {
        let verifier = ProofVerifier::new(bytes);
        for r in regs
            .get(&(c.app_id.clone(), c.platform.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if r.alg != c.measurement.alg {
                continue;
            }
            if verifier.matches(&r.digest, &ev.proof) {
                if r.expires_at.is_some_and(|e| e <= now) {
                    expired = true;
                } else {
                    active = true;
                }
            }
        }
    }
    if !active {
        reasons.insert(if expired {
            Reason::RegistrationExpired
        } else {
            Reason::AppNotRegistered
        });
    }

    let s = &c.signals;
    let r = &ctx.policy.reject;
    for (present, rejected, reason) in [
        (s.debugger, r.debugger, Reason::Debugger),
        (!s.preload.is_empty(), r.preload, Reason::Preload),
        (!s.injected.is_empty(), r.injected, Reason::InjectedCode),
        (
            !s.code_patched.is_empty(),
            r.code_patched,
            Reason::CodePatched,
        ),
        (s.emulator, r.emulator, Reason::Emulator),
        (s.virtualized, r.virtualized, Reason::Virtualized),
        (s.root, r.root, Reason::Rooted),
    ] {
        if present && rejected {
            reasons.insert(reason);
        }
    }

    if ctx.policy.require.platform_attestation {
        // Platform verifiers arrive with the platform-attestation work; until
        // then present evidence cannot be verified and counts as invalid.
        reasons.insert(if c.platform_evidence.is_some() {
            Reason::PlatformAttestationInvalid
        } else {
            Reason::PlatformAttestationMissing
        });
    }

    let action = ctx.devices.and_then(|d| d.get(&ev.device_id)).copied();
    if action == Some(DeviceAction::Block) {
        reasons.insert(Reason::DeviceBlocked);
    }
    let allowed = action == Some(DeviceAction::Allow);
    // A valid token needs a key to sign it: an unknown API never gets one.
    let valid = ctx.api_known && (reasons.is_empty() || allowed);
    Verdict {
        reasons,
        allowed,
        valid,
    }
}
