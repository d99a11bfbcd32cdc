//! The account policy: which signals are rejected and what the token reveals.

use serde::{Deserialize, Serialize};

/// An account's policy. Stored as JSON; changed one key at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Policy {
    /// Which signals turn into reasons.
    pub reject: Reject,
    /// Return the reasons to the app in the attest response.
    pub reveal_reasons: bool,
    /// Token contents.
    pub token: TokenPolicy,
    /// What must be present.
    pub require: Require,
}

/// `reject.*`: signals the policy rejects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reject {
    /// `debugger`
    pub debugger: bool,
    /// `preload`
    pub preload: bool,
    /// `injected-code`
    pub injected: bool,
    /// `code-patched`
    pub code_patched: bool,
    /// `emulator`
    pub emulator: bool,
    /// `virtualized`
    pub virtualized: bool,
    /// `rooted`
    pub root: bool,
}

impl Default for Reject {
    fn default() -> Self {
        Self {
            debugger: true,
            preload: true,
            injected: true,
            code_patched: true,
            emulator: true,
            // Servers and CI runners are virtual machines: off by default.
            virtualized: false,
            root: true,
        }
    }
}

/// `token.*`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenPolicy {
    /// Add the client address as the `ip` claim.
    pub ip: bool,
}

/// `require.*`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Require {
    /// Require platform attestation (`platform-attestation-missing` / `-invalid`).
    pub platform_attestation: bool,
}

/// Why `policy set` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The key names no setting.
    #[error("unknown policy key {0:?}; known keys: {known}", known = Policy::KEYS.join(", "))]
    UnknownKey(String),
    /// The value is not `true` or `false`.
    #[error("policy value for {0} must be true or false")]
    BadValue(String),
}

impl Policy {
    /// Every settable key.
    pub const KEYS: &'static [&'static str] = &[
        "reject.debugger",
        "reject.preload",
        "reject.injected",
        "reject.code_patched",
        "reject.emulator",
        "reject.virtualized",
        "reject.root",
        "reveal_reasons",
        "token.ip",
        "require.platform_attestation",
    ];

    fn slot(&mut self, key: &str) -> Option<&mut bool> {
        Some(match key {
            "reject.debugger" => &mut self.reject.debugger,
            "reject.preload" => &mut self.reject.preload,
            "reject.injected" => &mut self.reject.injected,
            "reject.code_patched" => &mut self.reject.code_patched,
            "reject.emulator" => &mut self.reject.emulator,
            "reject.virtualized" => &mut self.reject.virtualized,
            "reject.root" => &mut self.reject.root,
            "reveal_reasons" => &mut self.reveal_reasons,
            "token.ip" => &mut self.token.ip,
            "require.platform_attestation" => &mut self.require.platform_attestation,
            _ => return None,
        })
    }

    /// Sets one key from its text value.
    ///
    /// # Errors
    /// [`PolicyError`] for an unknown key or a value that is not a boolean.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), PolicyError> {
        let v = match value {
            "true" => true,
            "false" => false,
            _ => return Err(PolicyError::BadValue(key.to_owned())),
        };
        *self
            .slot(key)
            .ok_or_else(|| PolicyError::UnknownKey(key.to_owned()))? = v;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_round_trip() {
        let mut p = Policy::default();
        for k in Policy::KEYS {
            p.set(k, "true").unwrap();
        }
        assert!(p.reject.virtualized && p.token.ip && p.reveal_reasons);
        assert!(matches!(
            p.set("reject.nope", "true"),
            Err(PolicyError::UnknownKey(_))
        ));
        assert!(matches!(
            p.set("reject.debugger", "yes"),
            Err(PolicyError::BadValue(_))
        ));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        assert_eq!(
            serde_json::from_str::<Policy>("{}").unwrap(),
            Policy::default()
        );
    }
}
