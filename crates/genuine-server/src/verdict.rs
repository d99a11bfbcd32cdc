//! The verdict (protocol §4): a pure function of the account's state, the
//! nonce check, the verified evidence and the time.

use std::collections::HashMap;

use genuine_protocol::evidence::VerifiedEvidence;
use genuine_protocol::measure::{AppDigest, ProofVerifier};
use genuine_protocol::{Reason, ReasonSet};

use crate::platform::Outcome;
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
    /// The outcome of this evidence's platform attestation (`None`: no
    /// `platform_evidence`), decided by [`crate::platform::check`].
    pub platform: Option<&'a Outcome>,
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
        match ctx.platform {
            Some(Outcome::Passed) => {}
            Some(Outcome::Failed(_)) => reasons.insert(Reason::PlatformAttestationInvalid),
            None => reasons.insert(Reason::PlatformAttestationMissing),
        }
    }

    let action = ctx.devices.and_then(|d| d.get(&ev.device_id)).copied();
    if action == Some(DeviceAction::Block) {
        reasons.insert(Reason::DeviceBlocked);
    }
    let allowed = action == Some(DeviceAction::Allow);
    // A valid token needs a key to sign it: an unknown API never gets one.
    // The allow list waives integrity findings, never freshness: otherwise one
    // captured request of an allow-listed device could be replayed forever.
    let fresh = nonce == NonceStatus::Fresh;
    let valid = ctx.api_known && (reasons.is_empty() || (allowed && fresh));
    Verdict {
        reasons,
        allowed,
        valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genuine_protocol::b64;
    use genuine_protocol::device::DeviceKey;
    use genuine_protocol::evidence::{
        EvidenceClaims, MeasurementClaim, ParsedEvidence, sign_evidence,
    };
    use genuine_protocol::measure::{ELF_EXEC_SEGMENTS_SHA256_V1, proof};
    use ring::rand::SystemRandom;

    const NONCE: &[u8] = b"nonce-bytes";

    fn evidence(d: AppDigest) -> VerifiedEvidence {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let claims = EvidenceClaims {
            nonce: "n".into(),
            account: "a".into(),
            app_id: "app".into(),
            app_version: "1".into(),
            platform: "linux".into(),
            api: "api".into(),
            iat: 0,
            measurement: MeasurementClaim {
                alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
                proof: b64::encode(&proof(NONCE, &d)),
            },
            signals: Default::default(),
            binding: None,
            platform_evidence: None,
        };
        ParsedEvidence::parse(&sign_evidence(&key, &rng, &claims).unwrap())
            .unwrap()
            .verify()
            .unwrap()
    }

    fn regs(expires_at: Option<i64>) -> HashMap<(String, String), Vec<Registration>> {
        let r = Registration {
            id: "r".into(),
            alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
            digest: AppDigest([1; 32]),
            expires_at,
        };
        HashMap::from([(("app".to_owned(), "linux".to_owned()), vec![r])])
    }

    #[test]
    fn registered_and_clean_is_valid() {
        let r = regs(None);
        let ctx = VerdictContext {
            api_known: true,
            registrations: Some(&r),
            ..Default::default()
        };
        let v = evaluate(
            &ctx,
            NonceStatus::Fresh,
            Some(NONCE),
            Some(&evidence(AppDigest([1; 32]))),
            10,
        );
        assert_eq!(
            v,
            Verdict {
                reasons: ReasonSet::empty(),
                allowed: false,
                valid: true
            }
        );
        // The proof is bound to the nonce: other nonce bytes do not match.
        let v = evaluate(
            &ctx,
            NonceStatus::Fresh,
            Some(b"other"),
            Some(&evidence(AppDigest([1; 32]))),
            10,
        );
        assert_eq!(v.reasons.names(), vec!["app-not-registered"]);
    }

    #[test]
    fn expiry_is_compared_with_the_injected_time() {
        let r = regs(Some(100));
        let ctx = VerdictContext {
            api_known: true,
            registrations: Some(&r),
            ..Default::default()
        };
        let ev = evidence(AppDigest([1; 32]));
        assert!(evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), Some(&ev), 99).valid);
        let v = evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), Some(&ev), 100);
        assert_eq!(v.reasons.names(), vec!["registration-expired"]);
    }

    #[test]
    fn allow_list_cannot_rescue_unverified_evidence_or_an_unknown_api() {
        let r = regs(None);
        let ev = evidence(AppDigest([1; 32]));
        let devices = HashMap::from([(ev.device_id.clone(), DeviceAction::Allow)]);
        let ctx = VerdictContext {
            api_known: false,
            registrations: Some(&r),
            devices: Some(&devices),
            ..Default::default()
        };
        let v = evaluate(&ctx, NonceStatus::Replayed, Some(NONCE), Some(&ev), 0);
        assert!(v.allowed && !v.valid);
        assert_eq!(v.reasons.names(), vec!["nonce-replayed", "api-unknown"]);
        let ctx = VerdictContext {
            api_known: true,
            devices: Some(&devices),
            ..Default::default()
        };
        let v = evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), None, 0);
        assert!(!v.valid);
        assert_eq!(v.reasons.names(), vec!["evidence-invalid"]);
        let ctx = VerdictContext {
            api_known: true,
            registrations: Some(&r),
            devices: Some(&devices),
            ..Default::default()
        };
        assert!(
            !evaluate(&ctx, NonceStatus::Replayed, Some(NONCE), Some(&ev), 0).valid,
            "the allow list never waives freshness"
        );
    }

    #[test]
    fn platform_attestation_required() {
        let r = regs(None);
        let mut policy = Policy::default();
        policy.require.platform_attestation = true;
        let ev = evidence(AppDigest([1; 32]));
        let mut ctx = VerdictContext {
            policy,
            api_known: true,
            registrations: Some(&r),
            devices: None,
            platform: None,
        };
        let v = evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), Some(&ev), 0);
        assert_eq!(v.reasons.names(), vec!["platform-attestation-missing"]);
        let failed = Outcome::Failed(vec!["nonce-mismatch"]);
        ctx.platform = Some(&failed);
        let v = evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), Some(&ev), 0);
        assert_eq!(v.reasons.names(), vec!["platform-attestation-invalid"]);
        ctx.platform = Some(&Outcome::Passed);
        assert!(evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), Some(&ev), 0).valid);
        // Not required: a failed platform attestation is no reason.
        ctx.policy.require.platform_attestation = false;
        ctx.platform = Some(&failed);
        assert!(evaluate(&ctx, NonceStatus::Fresh, Some(NONCE), Some(&ev), 0).valid);
    }
}
