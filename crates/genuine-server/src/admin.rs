//! Admin operations (the `/admin/v1/` plane): accounts, admin tokens, API
//! domains and keys, registrations, device overrides, policy, token
//! inspection and metrics. Every write drops the account's cached state.

use std::collections::BTreeMap;

use genuine_protocol::measure::{AppDigest, ELF_EXEC_SEGMENTS_SHA256_V1};
use genuine_protocol::{Reason, ReasonSet, b64};
use genuine_verify::{Algorithm, Expectations, Jwks, Verifier};
use serde::{Deserialize, Serialize};

use crate::devices::Period;
use crate::error::ApiError;
use crate::keys::{SigningKey, hash_secret, new_kid, phantom_kid};
use crate::platform::{self, AndroidSettings, AppleSettings, PlayInput, PlaySettings};
use crate::policy::Policy;
use crate::service::{Service, TokenClaims, random_id, seal_context};
use crate::store::{
    AccountRow, AdminTokenRow, ApiRow, AppPlatformRow, DeviceRow, KeyRow, RegistrationRow,
};

/// Admin roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in the account.
    Admin,
    /// Registrations and device overrides (and reading).
    Dev,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Dev => "dev",
        }
    }
}

/// Who an admin request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's account.
    pub account: String,
    /// The token's role.
    pub role: Role,
    /// The token's id (not the secret).
    pub token_id: String,
}

impl Identity {
    /// Checks that this identity may act on `account` with `need`.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] naming the missing right.
    pub fn require(&self, account: &str, need: Role) -> Result<(), ApiError> {
        if self.account != account {
            return Err(ApiError::Forbidden("this token belongs to another account"));
        }
        if need == Role::Admin && self.role != Role::Admin {
            return Err(ApiError::Forbidden("this needs the admin role"));
        }
        Ok(())
    }
}

/// An API domain as the admin plane shows it.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApiInfo {
    /// Domain.
    pub domain: String,
    /// Algorithm.
    pub alg: String,
    /// Token lifetime, seconds.
    pub ttl: i64,
    /// Active key id.
    pub kid: String,
    /// Issuer of its tokens.
    pub issuer: String,
    /// The HS256 secret, base64url: only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl std::fmt::Debug for ApiInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiInfo")
            .field("domain", &self.domain)
            .field("alg", &self.alg)
            .field("ttl", &self.ttl)
            .field("kid", &self.kid)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A registration as the admin plane shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationInfo {
    /// Id.
    pub id: String,
    /// App id.
    pub app_id: String,
    /// Platform.
    pub platform: String,
    /// Measurement algorithm.
    pub alg: String,
    /// Digest, hex.
    pub digest: String,
    /// Version label.
    pub version: Option<String>,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

/// `POST registrations` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRegistration {
    /// App id.
    pub app_id: String,
    /// Digest, 64 hex digits.
    pub digest: String,
    /// Measurement algorithm (`elf-exec-segments-sha256/v1`).
    #[serde(default)]
    pub alg: Option<String>,
    /// Platform (`linux`).
    #[serde(default)]
    pub platform: Option<String>,
    /// Version label.
    #[serde(default)]
    pub version: Option<String>,
    /// Expire this many seconds from now.
    #[serde(default)]
    pub expire_after_secs: Option<u64>,
    /// Expire at this Unix time.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A device override as the admin plane shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device id.
    pub device_id: String,
    /// `allow` or `block`.
    pub action: String,
    /// Note.
    pub note: Option<String>,
    /// Last change, Unix seconds.
    pub updated_at: i64,
}

/// What `token check` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenReport {
    /// Signed by a published key of the account and all claims check out.
    pub valid: bool,
    /// Signed by a decoy key: the attestation failed.
    pub decoy: bool,
    /// Header `kid`.
    pub kid: Option<String>,
    /// Header `alg`.
    pub alg: Option<String>,
    /// The claims (unverified when neither valid nor decoy).
    pub claims: Option<serde_json::Value>,
    /// Reasons decoded from `arc` (empty: none).
    pub reasons: Option<Vec<String>>,
    /// Why it is not valid.
    pub error: Option<String>,
}

/// Metrics over a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Window start, Unix seconds (rounded down to the hour).
    pub since: i64,
    /// Attestations per outcome (`valid`, `decoy`).
    pub outcomes: BTreeMap<String, i64>,
    /// Reasons recorded, per name.
    pub reasons: BTreeMap<String, i64>,
    /// Distinct devices that attested in the current UTC hour, day and
    /// month (HyperLogLog estimates, ±1 % typical).
    pub unique_devices: UniqueDevices,
}

/// Unique devices in the current UTC hour, day and month.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UniqueDevices {
    /// This hour.
    pub hour: u64,
    /// Today.
    pub day: u64,
    /// This month.
    pub month: u64,
}

/// An app's platform attestation settings as the admin plane shows them.
/// Play's decryption key is never shown: `play.decryption_key_set` says it
/// is held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppPlatformInfo {
    /// App id.
    pub app_id: String,
    /// App Attest settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple: Option<AppleSettings>,
    /// Key Attestation settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<AndroidSettings>,
    /// Play Integrity settings (without the decryption key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<PlaySettings>,
}

/// How long after a rotation's last possible token expiry the retired key
/// stays published: the JWKS `max-age` (60 s) plus 60 s of verifier leeway.
pub const ROTATION_GRACE_SECS: i64 = 120;

/// The last second of the year 9999, the latest expiry accepted.
const MAX_TIME: i64 = 253_402_300_799;

/// Whether `s` may name an account, an API domain or an app id: 1 to 255 of
/// `A-Z a-z 0-9 . _ - :`.
#[must_use]
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

pub(crate) fn check_name(field: &'static str, s: &str) -> Result<(), ApiError> {
    if is_name(s) {
        Ok(())
    } else {
        Err(ApiError::InvalidField {
            field,
            message: "must be 1 to 255 of A-Z a-z 0-9 . _ - :".into(),
        })
    }
}

impl Service {
    /// Resolves a bearer token to an identity.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for an unknown token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Identity, ApiError> {
        let row = self
            .store
            .admin_token_by_hash(&hash_secret(bearer))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let role = match row.role.as_str() {
            "admin" => Role::Admin,
            "dev" => Role::Dev,
            _ => return Err(ApiError::Unauthorized),
        };
        Ok(Identity {
            account: row.account,
            role,
            token_id: row.id,
        })
    }

    /// Creates an admin token; returns its id and the secret (shown once).
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn create_admin_token(
        &self,
        account: &str,
        role: Role,
        label: Option<String>,
    ) -> Result<(String, String), ApiError> {
        let secret = random_id(&self.rng, "gat_", 32)?;
        let id = random_id(&self.rng, "tok_", 9)?;
        self.store
            .insert_admin_token(&AdminTokenRow {
                id: id.clone(),
                account: account.to_owned(),
                role: role.as_str().to_owned(),
                token_hash: hash_secret(&secret),
                label,
                created_at: self.clock.now(),
            })
            .await?;
        Ok((id, secret))
    }

    /// Creates an account with the default policy and its first admin token.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] if it exists.
    pub async fn create_account(&self, name: &str) -> Result<String, ApiError> {
        check_name("name", name)?;
        let policy = serde_json::to_string(&Policy::default()).map_err(|_| ApiError::Internal)?;
        self.store
            .create_account(&AccountRow {
                name: name.to_owned(),
                policy,
                created_at: self.clock.now(),
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict => ApiError::Conflict("account"),
                e => e.into(),
            })?;
        self.invalidate(name);
        let (_, token) = self
            .create_admin_token(name, Role::Admin, Some("initial".into()))
            .await?;
        Ok(token)
    }

    /// Creates the `default` account on first start; returns its admin token.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn bootstrap(&self) -> Result<Option<String>, ApiError> {
        if self.store.account("default").await?.is_some() {
            return Ok(None);
        }
        self.create_account("default").await.map(Some)
    }

    fn seal_key(
        &self,
        key: &SigningKey,
        doc: &[u8],
        account: &str,
        domain: &str,
        purpose: &str,
        now: i64,
    ) -> Result<KeyRow, ApiError> {
        Ok(KeyRow {
            kid: key.kid().to_owned(),
            account: account.to_owned(),
            domain: domain.to_owned(),
            purpose: purpose.to_owned(),
            alg: key.alg().as_str().to_owned(),
            private_enc: self
                .master
                .seal(&self.rng, &seal_context(key.kid(), purpose), doc)?,
            created_at: now,
            retired_at: None,
            publish_until: None,
        })
    }

    fn api_info(&self, account: &str, row: &ApiRow, kid: &str, secret: Option<&[u8]>) -> ApiInfo {
        ApiInfo {
            domain: row.domain.clone(),
            alg: row.alg.clone(),
            ttl: row.ttl_secs,
            kid: kid.to_owned(),
            issuer: self.issuer(account),
            secret: secret.map(b64::encode),
        }
    }

    /// Adds an API domain with a fresh key set (and decoy key).
    ///
    /// # Errors
    /// [`ApiError`] for a bad name, alg or TTL, or if it exists.
    pub async fn add_api(
        &self,
        account: &str,
        domain: &str,
        alg: &str,
        ttl: i64,
    ) -> Result<ApiInfo, ApiError> {
        check_name("domain", domain)?;
        let alg = Algorithm::from_name(alg).ok_or_else(|| ApiError::InvalidField {
            field: "alg",
            message: "must be ES256, EdDSA or HS256".into(),
        })?;
        if !(10..=86_400).contains(&ttl) {
            return Err(ApiError::InvalidField {
                field: "ttl",
                message: "must be between 10 and 86400 seconds".into(),
            });
        }
        let now = self.clock.now();
        let (active, doc) = SigningKey::generate(alg, new_kid(&self.rng)?, &self.rng)?;
        let (decoy, decoy_doc) = SigningKey::generate(alg, new_kid(&self.rng)?, &self.rng)?;
        let row = ApiRow {
            account: account.to_owned(),
            domain: domain.to_owned(),
            alg: alg.as_str().to_owned(),
            ttl_secs: ttl,
            created_at: now,
        };
        let keys = [
            self.seal_key(&active, &doc, account, domain, "signing", now)?,
            self.seal_key(&decoy, &decoy_doc, account, domain, "decoy", now)?,
        ];
        self.store
            .insert_api(&row, &keys)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict => ApiError::Conflict("API domain"),
                e => e.into(),
            })?;
        self.invalidate(account);
        tracing::info!(
            account,
            domain,
            alg = alg.as_str(),
            kid = active.kid(),
            "API added"
        );
        Ok(self.api_info(account, &row, active.kid(), active.hs256_secret()))
    }

    /// Lists API domains.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn list_apis(&self, account: &str) -> Result<Vec<ApiInfo>, ApiError> {
        let state = self.state(account).await?.ok_or(ApiError::AccountUnknown)?;
        let mut out: Vec<ApiInfo> = state
            .apis
            .values()
            .map(|a| self.api_info(account, &a.row, a.active.kid(), None))
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(out)
    }

    /// Removes an API domain and its keys: its tokens stop verifying.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] if there is none.
    pub async fn remove_api(&self, account: &str, domain: &str) -> Result<(), ApiError> {
        let removed = self.store.delete_api(account, domain).await?;
        self.invalidate(account);
        if removed {
            Ok(())
        } else {
            Err(ApiError::NotFound("API domain"))
        }
    }

    /// Rotates an API's signing key. The previous key stays published until
    /// the last token it signed has expired (now + TTL).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] if there is no such API.
    pub async fn rotate_api(&self, account: &str, domain: &str) -> Result<ApiInfo, ApiError> {
        let state = self.state(account).await?.ok_or(ApiError::AccountUnknown)?;
        let api = state
            .apis
            .get(domain)
            .ok_or(ApiError::NotFound("API domain"))?;
        let now = self.clock.now();
        let (key, doc) = SigningKey::generate(api.active.alg(), new_kid(&self.rng)?, &self.rng)?;
        let row = self.seal_key(&key, &doc, account, domain, "signing", now)?;
        self.store
            .rotate_key(
                &row,
                now,
                now.saturating_add(api.row.ttl_secs)
                    .saturating_add(ROTATION_GRACE_SECS),
            )
            .await?;
        self.invalidate(account);
        tracing::info!(
            account,
            domain,
            old_kid = api.active.kid(),
            new_kid = key.kid(),
            "key rotated"
        );
        Ok(self.api_info(account, &api.row, key.kid(), key.hs256_secret()))
    }

    /// Registers an app digest.
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] for a bad app id, digest, algorithm or expiry.
    pub async fn add_registration(
        &self,
        account: &str,
        new: NewRegistration,
    ) -> Result<RegistrationInfo, ApiError> {
        check_name("app_id", &new.app_id)?;
        let digest = AppDigest::from_hex(&new.digest).map_err(|_| ApiError::InvalidField {
            field: "digest",
            message: "must be 64 hexadecimal digits".into(),
        })?;
        let alg = new
            .alg
            .unwrap_or_else(|| ELF_EXEC_SEGMENTS_SHA256_V1.to_owned());
        if alg != ELF_EXEC_SEGMENTS_SHA256_V1 {
            return Err(ApiError::InvalidField {
                field: "alg",
                message: format!("supported: {ELF_EXEC_SEGMENTS_SHA256_V1}"),
            });
        }
        let platform = new.platform.unwrap_or_else(|| "linux".to_owned());
        check_name("platform", &platform)?;
        if let Some(v) = &new.version
            && !genuine_protocol::evidence::is_identifier(v)
        {
            return Err(ApiError::InvalidField {
                field: "version",
                message: "must be 1 to 255 characters".into(),
            });
        }
        let now = self.clock.now();
        let expires_at = match (new.expire_after_secs, new.expires_at) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidField {
                    field: "expires_at",
                    message: "give expires_at or expire_after_secs, not both".into(),
                });
            }
            (Some(s), None) => Some(now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
            (None, at) => at,
        };
        if expires_at.is_some_and(|e| !(0..=MAX_TIME).contains(&e)) {
            return Err(ApiError::InvalidField {
                field: "expires_at",
                message: "must fall between 1970 and the year 9999".into(),
            });
        };
        let row = RegistrationRow {
            id: random_id(&self.rng, "reg_", 9)?,
            account: account.to_owned(),
            app_id: new.app_id,
            platform,
            alg,
            digest: digest.0.to_vec(),
            version: new.version,
            created_at: now,
            expires_at,
        };
        self.store.insert_registration(&row).await?;
        self.invalidate(account);
        Ok(registration_info(row))
    }

    /// Lists registrations.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn list_registrations(
        &self,
        account: &str,
        app_id: Option<&str>,
    ) -> Result<Vec<RegistrationInfo>, ApiError> {
        Ok(self
            .store
            .registrations(account, app_id)
            .await?
            .into_iter()
            .map(registration_info)
            .collect())
    }

    /// Removes a registration.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] if there is none.
    pub async fn remove_registration(&self, account: &str, id: &str) -> Result<(), ApiError> {
        let removed = self.store.delete_registration(account, id).await?;
        self.invalidate(account);
        if removed {
            Ok(())
        } else {
            Err(ApiError::NotFound("registration"))
        }
    }

    /// Sets an app's settings for one platform kind (`apple`, `android`,
    /// `play`) from the JSON body; Play's decryption key is sealed under the
    /// master key.
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] / [`ApiError::InvalidRequest`] naming what
    /// is wrong; [`ApiError::NotFound`] for an unknown kind.
    pub async fn set_app_platform(
        &self,
        account: &str,
        app_id: &str,
        kind: &str,
        body: serde_json::Value,
    ) -> Result<AppPlatformInfo, ApiError> {
        check_name("app_id", app_id)?;
        let shape = |e: serde_json::Error| ApiError::InvalidRequest(e.to_string());
        let (settings, secret) = match kind {
            platform::APPLE => {
                let s: AppleSettings = serde_json::from_value(body).map_err(shape)?;
                s.validate()?;
                (serde_json::to_string(&s), None)
            }
            platform::ANDROID => {
                let s: AndroidSettings = serde_json::from_value(body).map_err(shape)?;
                s.validate()?;
                (serde_json::to_string(&s), None)
            }
            platform::PLAY => {
                let input: PlayInput = serde_json::from_value(body).map_err(shape)?;
                let key = genuine_platform::value::decode_base64_any(&input.decryption_key)
                    .map_err(|_| ApiError::InvalidField {
                        field: "decryption_key",
                        message: "must be base64".into(),
                    })?;
                input.settings.validate(&key)?;
                let sealed = self.master.seal(
                    &self.rng,
                    &platform::play_secret_context(account, app_id),
                    &key,
                )?;
                (serde_json::to_string(&input.settings), Some(sealed))
            }
            _ => return Err(ApiError::NotFound("platform kind (apple, android, play)")),
        };
        let row = AppPlatformRow {
            account: account.to_owned(),
            app_id: app_id.to_owned(),
            kind: kind.to_owned(),
            settings: settings.map_err(|_| ApiError::Internal)?,
            secret_enc: secret,
            updated_at: self.clock.now(),
        };
        self.store.put_app_platform(&row).await?;
        self.invalidate(account);
        tracing::info!(account, app_id, kind, "platform settings set");
        self.app_platform(account, app_id).await
    }

    /// An app's platform settings (every kind set), from the account state.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails or a stored value is corrupt.
    pub async fn app_platform(
        &self,
        account: &str,
        app_id: &str,
    ) -> Result<AppPlatformInfo, ApiError> {
        check_name("app_id", app_id)?;
        // The account state holds the settings as checked when they were loaded.
        let state = self.state(account).await?.ok_or(ApiError::AccountUnknown)?;
        let p = state.platforms.get(app_id);
        Ok(AppPlatformInfo {
            app_id: app_id.to_owned(),
            apple: p.and_then(|p| p.apple.as_ref()).map(|a| a.settings.clone()),
            android: p
                .and_then(|p| p.android.as_ref())
                .map(|a| a.settings.clone()),
            play: p.and_then(|p| p.play.as_ref()).map(|a| a.settings.clone()),
        })
    }

    /// Removes an app's settings for one kind.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] if there were none.
    pub async fn remove_app_platform(
        &self,
        account: &str,
        app_id: &str,
        kind: &str,
    ) -> Result<(), ApiError> {
        check_name("app_id", app_id)?;
        if !platform::SETTINGS_KINDS.contains(&kind) {
            return Err(ApiError::NotFound("platform kind (apple, android, play)"));
        }
        let removed = self
            .store
            .delete_app_platform(account, app_id, kind)
            .await?;
        self.invalidate(account);
        if removed {
            Ok(())
        } else {
            Err(ApiError::NotFound("platform settings"))
        }
    }

    /// Sets a device override (`allow` or `block`).
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] for a bad device id or action.
    pub async fn set_device(
        &self,
        account: &str,
        device_id: &str,
        action: &str,
        note: Option<String>,
    ) -> Result<DeviceInfo, ApiError> {
        if b64::decode_array::<16>(device_id).is_err() {
            return Err(ApiError::InvalidField {
                field: "device_id",
                message: "must be a 22-character device id".into(),
            });
        }
        if action != "allow" && action != "block" {
            return Err(ApiError::InvalidField {
                field: "action",
                message: "must be allow or block".into(),
            });
        }
        let row = DeviceRow {
            account: account.to_owned(),
            device_id: device_id.to_owned(),
            action: action.to_owned(),
            note,
            updated_at: self.clock.now(),
        };
        self.store.upsert_device(&row).await?;
        self.invalidate(account);
        Ok(DeviceInfo {
            device_id: row.device_id,
            action: row.action,
            note: row.note,
            updated_at: row.updated_at,
        })
    }

    /// Clears a device override.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] if there is none.
    pub async fn clear_device(&self, account: &str, device_id: &str) -> Result<(), ApiError> {
        let removed = self.store.delete_device(account, device_id).await?;
        self.invalidate(account);
        if removed {
            Ok(())
        } else {
            Err(ApiError::NotFound("device override"))
        }
    }

    /// Lists device overrides.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn list_devices(&self, account: &str) -> Result<Vec<DeviceInfo>, ApiError> {
        Ok(self
            .store
            .devices(account)
            .await?
            .into_iter()
            .map(|d| DeviceInfo {
                device_id: d.device_id,
                action: d.action,
                note: d.note,
                updated_at: d.updated_at,
            })
            .collect())
    }

    /// The policy.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn policy(&self, account: &str) -> Result<Policy, ApiError> {
        Ok(self
            .state(account)
            .await?
            .ok_or(ApiError::AccountUnknown)?
            .policy
            .clone())
    }

    /// Sets one policy key.
    ///
    /// # Errors
    /// [`ApiError::Policy`] for an unknown key or bad value.
    pub async fn set_policy(
        &self,
        account: &str,
        key: &str,
        value: &str,
    ) -> Result<Policy, ApiError> {
        // Read-modify-write from the store, not the cache: one change at a
        // time in this process, and compare-and-set against the store so a
        // concurrent change through another node is never overwritten.
        let _guard = self.policy_guard().await;
        for _ in 0..16 {
            let row = self
                .store
                .account(account)
                .await?
                .ok_or(ApiError::AccountUnknown)?;
            let mut policy: Policy =
                serde_json::from_str(&row.policy).map_err(|_| ApiError::Internal)?;
            policy.set(key, value)?;
            let json = serde_json::to_string(&policy).map_err(|_| ApiError::Internal)?;
            if self
                .store
                .set_policy_if(account, &row.policy, &json)
                .await?
            {
                self.invalidate(account);
                return Ok(policy);
            }
        }
        tracing::warn!(
            account,
            "policy kept changing under 16 compare-and-set attempts"
        );
        Err(ApiError::Conflict("policy change"))
    }

    /// Mints an example token for testing a backend: valid, or a decoy.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown API.
    pub async fn example_token(
        &self,
        account: &str,
        domain: &str,
        invalid: bool,
        binding: Option<&str>,
        ttl: Option<i64>,
    ) -> Result<String, ApiError> {
        let state = self.state(account).await?.ok_or(ApiError::AccountUnknown)?;
        let api = state
            .apis
            .get(domain)
            .ok_or(ApiError::NotFound("API domain"))?;
        let ttl = ttl.unwrap_or(api.row.ttl_secs);
        if !(1..=86_400).contains(&ttl) {
            return Err(ApiError::InvalidField {
                field: "ttl",
                message: "must be between 1 and 86400 seconds".into(),
            });
        }
        let now = self.clock.now();
        let reasons: ReasonSet = if invalid {
            [Reason::AppNotRegistered].into_iter().collect()
        } else {
            ReasonSet::empty()
        };
        let did = random_id(&self.rng, "", 16)?;
        let claims = TokenClaims {
            iss: &state.issuer,
            aud: domain,
            sub: "example",
            iat: now,
            exp: now.saturating_add(ttl),
            jti: random_id(&self.rng, "", 16)?,
            did: &did,
            arc: self.example_arc(account, reasons)?,
            pay: binding.map(|b| {
                b64::encode(ring::digest::digest(&ring::digest::SHA256, b.as_bytes()).as_ref())
            }),
            ip: None,
        };
        let key = if invalid { &api.decoy } else { &api.active };
        Ok(key.mint(&self.rng, api.active.kid(), &claims)?)
    }

    /// Verifies a token against the account's keys and decodes its `arc`.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails; a bad token is a report, not an error.
    pub async fn check_token(
        &self,
        account: &str,
        token: &str,
        domain: Option<&str>,
    ) -> Result<TokenReport, ApiError> {
        let state = self.state(account).await?.ok_or(ApiError::AccountUnknown)?;
        let mut report = TokenReport {
            valid: false,
            decoy: false,
            kid: None,
            alg: None,
            claims: None,
            reasons: None,
            error: None,
        };
        let mut parts = token.split('.');
        let header: Option<serde_json::Value> = parts
            .next()
            .and_then(|h| b64::decode(h).ok())
            .and_then(|h| serde_json::from_slice(&h).ok());
        let claims: Option<serde_json::Value> = parts
            .next()
            .and_then(|p| b64::decode(p).ok())
            .and_then(|p| serde_json::from_slice(&p).ok());
        report.kid = header
            .as_ref()
            .and_then(|h| h.get("kid"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        report.alg = header
            .as_ref()
            .and_then(|h| h.get("alg"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        report.claims = claims.clone();
        let aud = claims
            .as_ref()
            .and_then(|c| c.get("aud"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        if let Some(arc) = claims
            .as_ref()
            .and_then(|c| c.get("arc"))
            .and_then(|v| v.as_str())
        {
            report.reasons = self
                .arc_key(account)
                .decode(arc)
                .ok()
                .map(|r| r.names().iter().map(|s| (*s).to_owned()).collect());
        }
        let now = self.clock.now();
        let Some(kid) = report.kid.clone() else {
            report.error = Some("token has no readable header or kid".into());
            return Ok(report);
        };
        let api = state
            .apis
            .values()
            .find(|a| a.signing.iter().any(|(k, _)| k.kid() == kid));
        let Some(api) = api else {
            let phantom = aud
                .as_deref()
                .is_some_and(|aud| phantom_kid(&self.master, account, aud) == kid);
            report.decoy = phantom;
            report.error = Some(if phantom {
                "decoy for an API domain the account does not have".into()
            } else {
                "kid names no key of this account".into()
            });
            return Ok(report);
        };
        if let Some(d) = domain
            && d != api.row.domain
        {
            report.error = Some(format!(
                "token is for another API domain ({})",
                api.row.domain
            ));
            return Ok(report);
        }
        let expect = Expectations {
            issuer: state.issuer.clone(),
            audiences: vec![api.row.domain.clone()],
            leeway_secs: 0,
        };
        let signer = api
            .signing
            .iter()
            .find(|(k, _)| k.kid() == kid)
            .map(|(k, _)| k.clone());
        let verifier_for = |k: &SigningKey| -> Result<Verifier, ApiError> {
            match k.public_jwk() {
                Some(mut jwk) => {
                    jwk.kid = Some(kid.clone());
                    Verifier::from_jwks(&Jwks { keys: vec![jwk] }, expect.clone())
                }
                None => Verifier::from_hs256_secret(
                    &kid,
                    k.hs256_secret().unwrap_or_default(),
                    expect.clone(),
                ),
            }
            .map_err(|_| ApiError::Internal)
        };
        if let Some(k) = signer {
            match verifier_for(&k)?.verify(token, now) {
                Ok(_) => {
                    let published = api
                        .signing
                        .iter()
                        .any(|(s, until)| s.kid() == kid && until.is_none_or(|u| u > now));
                    report.valid = published;
                    if !published {
                        report.error = Some("the key that signed it is no longer published".into());
                    }
                    return Ok(report);
                }
                Err(genuine_verify::VerifyError::BadSignature) => {}
                Err(e) => {
                    report.error = Some(e.to_string());
                    return Ok(report);
                }
            }
        }
        match verifier_for(&api.decoy)?.verify(token, now) {
            Ok(_) => {
                report.decoy = true;
                report.error = Some("decoy token: the attestation failed".into());
            }
            Err(e) => report.error = Some(e.to_string()),
        }
        Ok(report)
    }

    /// Attestations per outcome and reason since `since_secs` ago.
    ///
    /// # Errors
    /// [`ApiError`] if the store fails.
    pub async fn metrics_report(
        &self,
        account: &str,
        since_secs: i64,
    ) -> Result<MetricsReport, ApiError> {
        self.flush_counters().await;
        let now = self.clock.now();
        let from_hour = now.saturating_sub(since_secs.max(0)).div_euclid(3600);
        let mut unique = UniqueDevices::default();
        for (period, slot) in [
            (Period::Hour, &mut unique.hour),
            (Period::Day, &mut unique.day),
            (Period::Month, &mut unique.month),
        ] {
            *slot = self
                .devices()
                .unique(account, period, period.bucket(now))
                .await
                .map_err(|e| {
                    self.metrics.shared_state_error();
                    tracing::warn!(error = %e, "unique-device counts unavailable");
                    ApiError::StoreUnavailable
                })?;
        }
        let mut report = MetricsReport {
            since: from_hour * 3600,
            outcomes: BTreeMap::new(),
            reasons: BTreeMap::new(),
            unique_devices: unique,
        };
        for (k, n) in self.store.counts_since(account, from_hour).await? {
            if k.reason.is_empty() {
                *report.outcomes.entry(k.outcome).or_default() += n;
            } else {
                *report.reasons.entry(k.reason).or_default() += n;
            }
        }
        Ok(report)
    }
}

fn registration_info(r: RegistrationRow) -> RegistrationInfo {
    RegistrationInfo {
        id: r.id,
        app_id: r.app_id,
        platform: r.platform,
        alg: r.alg,
        digest: data_encoding::HEXLOWER.encode(&r.digest),
        version: r.version,
        created_at: r.created_at,
        expires_at: r.expires_at,
    }
}
