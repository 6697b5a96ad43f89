//! `Mdm-Signature`: a detached CMS SignedData over the exact request body, signed by the
//! device's identity (certificate embedded), verified by `mdm_crypto`'s one CMS verifier;
//! here is what is MDM's: the header's encoding, the body as the detached content, and
//! the identity the device authenticates as ([`Signer`]). Which CA issued that certificate
//! is checked by the caller (the SCEP CA), as is the binding of the certificate to an
//! enrollment: the certificate itself is not covered by the device's signature, so only a
//! certificate that chains to our CA and whose hash is bound to the enrollment may be
//! trusted.

use base64::Engine;
use der::{Decode, Encode};
use mdm_crypto::ScepError;
use sha2::Digest;
use x509_cert::Certificate;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureError(pub String);

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mdm-Signature rejected: {}", self.0)
    }
}

impl std::error::Error for SignatureError {}

fn fail(m: impl Into<String>) -> SignatureError {
    SignatureError(m.into())
}

/// The verified signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub certificate_der: Vec<u8>,
    /// Lowercase hex SHA-256 of the certificate's `tbsCertificate`, what its issuer
    /// signed: the enrollment binding key. Nothing outside it (the outer algorithm's
    /// encoding, say) can make a "new" identity of a certificate.
    pub cert_hash: String,
    /// Lowercase hex SHA-256 of the whole certificate DER: the binding key before
    /// bindings were keyed on `tbsCertificate` (read once to move such a binding over).
    pub der_hash: String,
    /// The certificate's validity (Unix seconds).
    pub not_before: i64,
    pub not_after: i64,
}

impl Signer {
    /// Whether the identity is valid at `now` (an expired one is refused; the device
    /// renews before its end).
    pub fn valid_at(&self, now: u64) -> bool {
        let now = now as i64;
        self.not_before <= now && now <= self.not_after
    }
}

/// The identity hashes of a certificate (DER): of its `tbsCertificate` (the binding key)
/// and of the whole encoding. Fails for a certificate whose outer signatureAlgorithm
/// differs from the one inside `tbsCertificate` (RFC 5280 §4.1.1.2).
pub fn identity_hashes(der: &[u8]) -> Result<(String, String), SignatureError> {
    let cert = Certificate::from_der(der).map_err(|e| fail(format!("certificate: {e}")))?;
    identity_hashes_of(&cert, der)
}

fn identity_hashes_of(cert: &Certificate, der: &[u8]) -> Result<(String, String), SignatureError> {
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(fail(
            "certificate's signatureAlgorithm differs from the one in tbsCertificate",
        ));
    }
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| fail(format!("certificate: {e}")))?;
    Ok((
        hex::encode(sha2::Sha256::digest(&tbs)),
        hex::encode(sha2::Sha256::digest(der)),
    ))
}

/// Verifies the `Mdm-Signature` header value (base64) against the raw body.
pub fn verify(header: &str, body: &[u8]) -> Result<Signer, SignatureError> {
    // Folded header values carry whitespace; devices' do not, and copying 2 KB char by
    // char showed in profiles.
    let compact: std::borrow::Cow<str> = if header.chars().any(char::is_whitespace) {
        header
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .into()
    } else {
        header.into()
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| fail("header is not base64"))?;
    // Read in place when it is DER; BER (indefinite lengths) is converted into `ber`.
    let mut ber = Vec::new();
    let signed = mdm_crypto::verify_signed_data_in_place(&raw, Some(body), &mut ber).map_err(
        |e| match e {
            ScepError::MessageDigestMismatch => fail("body does not match the signed digest"),
            e => fail(e.to_string()),
        },
    )?;
    // Devices sign attributes (messageDigest, signingTime); a bare signature is not theirs.
    if !signed.has_signed_attributes() {
        return Err(fail("signed attributes missing"));
    }
    Ok(Signer {
        certificate_der: signed.signer_der().to_vec(),
        cert_hash: hex::encode(sha2::Sha256::digest(signed.signer_tbs())),
        der_hash: hex::encode(sha2::Sha256::digest(signed.signer_der())),
        not_before: signed.signer_not_before_unix(),
        not_after: signed.signer_not_after_unix(),
    })
}

/// Parses a certificate (DER), for callers that check issuers.
pub fn certificate(der: &[u8]) -> Option<Certificate> {
    Certificate::from_der(der).ok()
}

/// Store key of our SCEP CA certificate (DER, or PEM), written by
/// [`crate::scep::ca::authority`]. While it is absent the device endpoints refuse every
/// identity ([`crate::device_auth::authenticate_device`]).
pub const SCEP_CA_CERT_KEY: &str = "scep:ca-cert";

/// The trust-anchor check of a device identity: `identity_der` must have been issued (and
/// signed) by one of `ca_certs` (DER). The `Mdm-Signature` only proves possession of the
/// key of the certificate embedded in it; this proves that certificate is ours.
///
/// An empty `ca_certs` refuses nothing here; the device endpoints refuse before calling
/// this when no CA exists ([`crate::device_auth::authenticate_device`]).
///
/// Checked ([`mdm_crypto::Certificate::verify_issued_by`]): the issuer name equals the
/// CA's subject and the certificate's signature verifies with the CA's RSA key
/// (SHA-1/256/384/512). Validity dates are not checked: devices keep signing with an
/// identity until they renew it.
pub fn require_issued_by(identity_der: &[u8], ca_certs: &[Vec<u8>]) -> Result<(), SignatureError> {
    if ca_certs.is_empty() {
        return Ok(());
    }
    let leaf = mdm_crypto::Certificate::from_der(identity_der)
        .map_err(|_| fail("identity certificate unreadable"))?;
    if !leaf.signature_algorithms_agree() {
        return Err(fail(
            "identity certificate's signatureAlgorithm differs from the one in tbsCertificate",
        ));
    }
    let mut why = None;
    for ca_der in ca_certs {
        let Ok(ca) = mdm_crypto::Certificate::from_der(ca_der) else {
            continue;
        };
        match leaf.verify_issued_by(&ca) {
            Ok(()) => return Ok(()),
            Err(e) => why = Some(e),
        }
    }
    Err(fail(match why {
        Some(e) => format!("identity certificate was not issued by our SCEP CA ({e})"),
        None => "identity certificate was not issued by our SCEP CA".into(),
    }))
}

/// CA certificates from the store value at [`SCEP_CA_CERT_KEY`]: DER, or one or more PEM
/// `CERTIFICATE` blocks.
pub fn ca_certs_from_store_value(raw: &[u8]) -> Vec<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return vec![raw.to_vec()];
    };
    if !text.contains("-----BEGIN") {
        return vec![raw.to_vec()];
    }
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            body = Some(String::new());
        } else if line.starts_with("-----END") {
            if let Some(b) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b)
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}
