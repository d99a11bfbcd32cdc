//! JSON bodies of the attestation plane (protocol §1, §2, §5, §6).

use serde::{Deserialize, Serialize};

/// `POST /v1/challenge` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// Account name.
    pub account: String,
    /// App id.
    pub app_id: String,
}

/// `POST /v1/challenge` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The nonce, base64url.
    pub nonce: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// `POST /v1/attest` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// Compact JWS evidence.
    pub evidence: String,
}

/// Reasons revealed to the app when the policy says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The token's `arc`.
    pub arc: String,
    /// Reason wire names.
    pub reasons: Vec<String>,
}

/// `POST /v1/attest` response: always a token for a well-formed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Present only when the verdict failed and the policy reveals reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
}

/// Every error body: a stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `body-not-json`.
    pub error: String,
    /// Human text naming what was wrong.
    pub message: String,
}
