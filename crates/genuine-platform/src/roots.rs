//! Built-in trust roots. Each is a public CA certificate embedded at build
//! time from `roots/` (see `roots/PROVENANCE.md`); verifiers take roots as a
//! parameter and use these by default.
//!
//! Android Key Attestation trusts Google's hardware attestation roots only:
//! the RSA-4096 key in its four issues (2016, 2019, 2021, 2022) and the EC
//! P-384 "Key Attestation CA1" root (2025). The AOSP software attestation
//! roots are never trusted (their private keys are published in AOSP).

use std::sync::OnceLock;

use crate::x509::TrustAnchor;

/// Apple App Attestation Root CA (P-384, valid 2020-03-18 to 2045-03-15),
/// byte-for-byte as published at
/// <https://www.apple.com/certificateauthority/Apple_App_Attestation_Root_CA.pem>.
pub const APPLE_APP_ATTESTATION_ROOT_CA_PEM: &str =
    include_str!("../roots/apple_app_attestation_root_ca.pem");

/// SHA-256 of the Apple App Attestation Root CA certificate (DER).
pub const APPLE_APP_ATTESTATION_ROOT_CA_SHA256: &str =
    "1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932";

/// The Apple App Attestation Root CA as a trust anchor (parsed once).
///
/// The embedded certificate is checked by this crate's tests; should it
/// ever fail to parse, the list is empty and every chain is untrusted.
#[must_use]
pub fn apple_app_attestation() -> &'static [TrustAnchor] {
    static ROOTS: OnceLock<Vec<TrustAnchor>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        TrustAnchor::from_pem(APPLE_APP_ATTESTATION_ROOT_CA_PEM).unwrap_or_default()
    })
}

/// Google's hardware attestation root (RSA-4096), 2016 issue (serial
/// e8fa196314d2fa18; expired 2026-05-24, still the root of factory chains:
/// the key is pinned, the certificate's validity is not checked).
pub const GOOGLE_HW_ROOT_RSA_2016_PEM: &str =
    include_str!("../roots/google_hw_attestation_root_rsa_2016_e8fa196314d2fa18.pem");
/// Google's hardware attestation root (the same RSA-4096 key), 2019 issue.
pub const GOOGLE_HW_ROOT_RSA_2019_PEM: &str =
    include_str!("../roots/google_hw_attestation_root_rsa_2019_d50ff25ba3f2d6b3.pem");
/// Google's hardware attestation root (the same RSA-4096 key), 2021 issue.
pub const GOOGLE_HW_ROOT_RSA_2021_PEM: &str =
    include_str!("../roots/google_hw_attestation_root_rsa_2021_c36b7c44b9ae1831.pem");
/// Google's hardware attestation root (the same RSA-4096 key), 2022 issue.
pub const GOOGLE_HW_ROOT_RSA_2022_PEM: &str =
    include_str!("../roots/google_hw_attestation_root_rsa_2022_f1c172a699eaf51d.pem");
/// Google's "Key Attestation CA1" root (EC P-384, 2025), which signs Remote
/// Key Provisioning chains since 2026.
pub const GOOGLE_KEY_ATTESTATION_CA1_PEM: &str =
    include_str!("../roots/google_key_attestation_ca1_ec_p384_2025.pem");

/// The Google hardware attestation roots with the SHA-256 of each
/// certificate (DER), in the order of [`google_hardware_attestation`].
pub const GOOGLE_HARDWARE_ROOTS: [(&str, &str); 5] = [
    (
        GOOGLE_HW_ROOT_RSA_2016_PEM,
        "c1984a3ef45c1e2a918551de10603c86f7051b2249c4891cae3230eabd0c97d5",
    ),
    (
        GOOGLE_HW_ROOT_RSA_2019_PEM,
        "1ef1a04b8ba58ab94589ac498c8982a783f24ea7307e0159a0c3a73b377d87cc",
    ),
    (
        GOOGLE_HW_ROOT_RSA_2021_PEM,
        "ab6641178a36e179aa0c1cdddf9a16eb45fa20943e2b8cd7c7c05c26cf8b487a",
    ),
    (
        GOOGLE_HW_ROOT_RSA_2022_PEM,
        "cedb1cb6dc896ae5ec797348bce9286753c2b38ee71ce0fbe34a9a1248800dfc",
    ),
    (
        GOOGLE_KEY_ATTESTATION_CA1_PEM,
        "6d9db4ce6c5c0b293166d08986e05774a8776ceb525d9e4329520de12ba4bcc0",
    ),
];

/// Google's hardware attestation roots as trust anchors (parsed once): the
/// RSA root in its four issues (one key, so one pin in effect) and Key
/// Attestation CA1. The default roots of [`crate::android`].
///
/// The embedded certificates are checked by this crate's tests; one that
/// ever failed to parse would be left out (chains ending in it untrusted).
#[must_use]
pub fn google_hardware_attestation() -> &'static [TrustAnchor] {
    static ROOTS: OnceLock<Vec<TrustAnchor>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        GOOGLE_HARDWARE_ROOTS
            .iter()
            .filter_map(|(pem, _)| TrustAnchor::from_pem(pem).ok())
            .flatten()
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_root_is_the_published_certificate() {
        let ders = crate::x509::pem_certificates(APPLE_APP_ATTESTATION_ROOT_CA_PEM).unwrap();
        assert_eq!(ders.len(), 1);
        assert_eq!(
            crate::x509::hex(&crate::x509::sha256(&ders[0])),
            APPLE_APP_ATTESTATION_ROOT_CA_SHA256
        );
        let anchors = apple_app_attestation();
        assert_eq!(anchors.len(), 1);
        assert!(anchors[0].name().contains("Apple App Attestation Root CA"));
    }

    #[test]
    fn google_roots_are_the_published_certificates() {
        for (pem, fingerprint) in GOOGLE_HARDWARE_ROOTS {
            let ders = crate::x509::pem_certificates(pem).unwrap();
            assert_eq!(ders.len(), 1);
            assert_eq!(
                crate::x509::hex(&crate::x509::sha256(&ders[0])),
                fingerprint
            );
        }
        let anchors = google_hardware_attestation();
        assert_eq!(anchors.len(), 5);
        // The four RSA issues pin one key.
        assert!(
            anchors[1..4]
                .iter()
                .all(|a| a.spki_der() == anchors[0].spki_der())
        );
        assert_ne!(anchors[4].spki_der(), anchors[0].spki_der());
        assert!(anchors[4].name().contains("Key Attestation CA1"));
    }
}
