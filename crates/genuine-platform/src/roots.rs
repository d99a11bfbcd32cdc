//! Built-in trust roots. Each is a public CA certificate embedded at build
//! time from `roots/` (see `roots/PROVENANCE.md`); verifiers take roots as a
//! parameter and use these by default.

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
}
