//! The SDK's one error type, and the short status word for a request header.

use crate::keystore::KeyStoreError;
use crate::probe::ProbeError;

/// Why no token could be had.
///
/// Three kinds, told apart by [`Error::is_retryable`] and [`Error::status`]:
/// the network or the service is unavailable (retry later:
/// [`Error::Network`], [`Error::ServiceUnavailable`]); the attestation was
/// rejected ([`Error::Rejected`], with the reasons when the policy reveals
/// them); or something is misconfigured or broken on this side (the rest).
/// Messages never contain a token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service could not be reached: DNS, connection, TLS, timeout.
    #[error("cannot reach the attestation service: {0}")]
    Network(String),
    /// The service answered that it cannot serve now (HTTP 429, 5xx).
    #[error("the attestation service is unavailable (HTTP {status}){}", retry_after.map(|s| format!("; retry after {s} s")).unwrap_or_default())]
    ServiceUnavailable {
        /// The HTTP status.
        status: u16,
        /// The service's `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// The attestation failed and the policy revealed why. (When it does not
    /// reveal reasons, the app gets a decoy token that looks valid.)
    #[error("attestation rejected: {}", reasons.join(", "))]
    Rejected {
        /// Reason wire names (protocol §4), e.g. `debugger`.
        reasons: Vec<String>,
        /// The token's opaque `arc`, for support requests.
        arc: String,
    },
    /// The service refused the request as malformed or unknown (HTTP 4xx):
    /// usually a wrong account, app id or service URL.
    #[error("the attestation service refused the request (HTTP {status}, {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The service's stable error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The service's answer was not what the protocol says.
    #[error("the attestation service answered something unexpected: {0}")]
    Protocol(String),
    /// A setting is wrong; names it.
    #[error("configuration: {0}")]
    Config(String),
    /// The device key could not be loaded, created or used.
    #[error("device key: {0}")]
    DeviceKey(#[from] KeyStoreError),
    /// The app could not be measured on this device.
    #[error("measuring the app failed: {0}")]
    Probe(#[from] ProbeError),
    /// The attestation could not be run (no thread could be started, or it
    /// stopped abnormally).
    #[error("the attestation could not run: {0}")]
    Internal(String),
}

impl Error {
    /// Whether trying again later may succeed (network, unavailability).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Network(_) | Self::ServiceUnavailable { .. })
    }

    /// The status word for this error.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            Self::Network(_) => Status::NoNetwork,
            Self::ServiceUnavailable { .. } => Status::ServiceUnavailable,
            Self::Rejected { .. } => Status::Rejected,
            Self::Refused { .. } => Status::Refused,
            Self::Protocol(_) => Status::ProtocolError,
            Self::Config(_) => Status::ConfigError,
            Self::DeviceKey(_) => Status::DeviceKeyError,
            Self::Probe(ProbeError::Unsupported) => Status::Unsupported,
            Self::Probe(_) => Status::MeasurementFailed,
            Self::Internal(_) => Status::Internal,
        }
    }
}

/// The name of the request header that carries [`Status::as_str`] to a
/// backend when the app has no token, so the backend can log why.
pub const STATUS_HEADER: &str = "Genuine-Status";

/// The outcome of the client's last attestation, as one short word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No attestation yet.
    Pending,
    /// The last attestation gave a token.
    Ok,
    /// The service could not be reached.
    NoNetwork,
    /// The service said it is unavailable.
    ServiceUnavailable,
    /// The attestation was rejected (reasons revealed).
    Rejected,
    /// The service refused the request (configuration).
    Refused,
    /// The service's answer did not follow the protocol.
    ProtocolError,
    /// A setting is wrong.
    ConfigError,
    /// The device key is unusable.
    DeviceKeyError,
    /// The app could not be measured.
    MeasurementFailed,
    /// The platform is not supported.
    Unsupported,
    /// The attestation could not run.
    Internal,
}

impl Status {
    /// The word: `pending`, `ok`, `no-network`, `service-unavailable`,
    /// `rejected`, `refused`, `protocol-error`, `config-error`,
    /// `device-key-error`, `measurement-failed`, `unsupported-platform`,
    /// `internal-error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ok => "ok",
            Self::NoNetwork => "no-network",
            Self::ServiceUnavailable => "service-unavailable",
            Self::Rejected => "rejected",
            Self::Refused => "refused",
            Self::ProtocolError => "protocol-error",
            Self::ConfigError => "config-error",
            Self::DeviceKeyError => "device-key-error",
            Self::MeasurementFailed => "measurement-failed",
            Self::Unsupported => "unsupported-platform",
            Self::Internal => "internal-error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
