//! `Mdm-Signature`: a detached CMS SignedData over the exact request body, signed by the
//! device's identity (certificate embedded). Verified here: the body's digest equals the
//! signed `messageDigest` attribute and the RSA signature over the signed attributes is
//! the signer certificate's. Which CA issued that certificate is checked by the caller
//! (the SCEP CA), as is the binding of the certificate to an enrollment: the certificate
//! itself is not covered by the device's signature, so only a certificate that chains to
//! our CA and whose hash is bound to the enrollment may be trusted.

use base64::Engine;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::{Decode, Encode};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use sha2::Digest;
use x509_cert::Certificate;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const SHA1: &str = "1.3.14.3.2.26";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";

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
    /// Lowercase hex SHA-256 of the certificate: the enrollment binding key.
    pub cert_hash: String,
}

/// Verifies the `Mdm-Signature` header value (base64) against the raw body.
pub fn verify(header: &str, body: &[u8]) -> Result<Signer, SignatureError> {
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| fail("header is not base64"))?;
    let der = crate::ber::to_der(&raw).map_err(|e| fail(e.to_string()))?;
    let ci = ContentInfo::from_der(&der).map_err(|e| fail(format!("not CMS: {e}")))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(fail("not a SignedData"));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| fail(format!("SignedData: {e}")))?;
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let [signer] = signers.as_slice() else {
        return Err(fail("exactly one signer expected"));
    };
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &signer.sid else {
        return Err(fail(
            "signer must be identified by issuer and serial number",
        ));
    };
    let cert = sd
        .certificates
        .as_ref()
        .into_iter()
        .flat_map(|set| set.0.iter())
        .find_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c)
                if c.tbs_certificate.issuer == sid.issuer
                    && c.tbs_certificate.serial_number == sid.serial_number =>
            {
                Some(c.clone())
            }
            _ => None,
        })
        .ok_or_else(|| fail("signer certificate not included"))?;

    let digest_oid = signer.digest_alg.oid.to_string();
    let body_digest = match digest_oid.as_str() {
        SHA1 => sha1::Sha1::digest(body).to_vec(),
        SHA256 => sha2::Sha256::digest(body).to_vec(),
        other => return Err(fail(format!("unsupported digest {other}"))),
    };
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| fail("signed attributes missing"))?;
    let md = attrs
        .iter()
        .find(|a| a.oid.to_string() == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
        .ok_or_else(|| fail("messageDigest attribute missing"))?;
    if md.as_bytes() != body_digest.as_slice() {
        return Err(fail("body does not match the signed digest"));
    }
    let signed = attrs
        .to_der()
        .map_err(|e| fail(format!("signed attributes: {e}")))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| fail(e.to_string()))?;
    let key =
        rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| fail("signer key is not RSA"))?;
    let sig = Signature::try_from(signer.signature.as_bytes())
        .map_err(|_| fail("malformed signature"))?;
    let ok = match digest_oid.as_str() {
        SHA1 => VerifyingKey::<sha1::Sha1>::new(key)
            .verify(&signed, &sig)
            .is_ok(),
        _ => VerifyingKey::<sha2::Sha256>::new(key)
            .verify(&signed, &sig)
            .is_ok(),
    };
    if !ok {
        return Err(fail("signature does not verify"));
    }
    let certificate_der = cert.to_der().map_err(|e| fail(e.to_string()))?;
    let cert_hash = hex::encode(sha2::Sha256::digest(&certificate_der));
    Ok(Signer {
        certificate_der,
        cert_hash,
    })
}

/// Parses a certificate (DER), for callers that check issuers.
pub fn certificate(der: &[u8]) -> Option<Certificate> {
    Certificate::from_der(der).ok()
}

/// Store key of our SCEP CA certificate (DER, or PEM), written by
/// [`crate::scep::ca::authority`]. While it is absent the device endpoints refuse every
/// identity ([`crate::checkin::authenticate_device`]).
pub const SCEP_CA_CERT_KEY: &str = "scep:ca-cert";

const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";

/// The trust-anchor check of a device identity: `identity_der` must have been issued (and
/// signed) by one of `ca_certs` (DER). The `Mdm-Signature` only proves possession of the
/// key of the certificate embedded in it; this proves that certificate is ours.
///
/// An empty `ca_certs` refuses nothing here; the device endpoints refuse before calling
/// this when no CA exists ([`crate::checkin::authenticate_device`]).
///
/// Checked: the issuer name equals the CA's subject and the certificate's signature
/// verifies with the CA's RSA key (SHA-1/256/384/512). Validity dates are not checked:
/// devices keep signing with an identity until they renew it.
pub fn require_issued_by(identity_der: &[u8], ca_certs: &[Vec<u8>]) -> Result<(), SignatureError> {
    if ca_certs.is_empty() {
        return Ok(());
    }
    let leaf = certificate(identity_der).ok_or_else(|| fail("identity certificate unreadable"))?;
    let tbs = leaf
        .tbs_certificate
        .to_der()
        .map_err(|e| fail(format!("identity certificate: {e}")))?;
    let sig = leaf
        .signature
        .as_bytes()
        .ok_or_else(|| fail("identity certificate signature malformed"))?;
    let alg = leaf.signature_algorithm.oid.to_string();
    for ca_der in ca_certs {
        let Some(ca) = certificate(ca_der) else {
            continue;
        };
        if ca.tbs_certificate.subject != leaf.tbs_certificate.issuer {
            continue;
        }
        let Ok(spki) = ca.tbs_certificate.subject_public_key_info.to_der() else {
            continue;
        };
        let Ok(key) = rsa::RsaPublicKey::from_public_key_der(&spki) else {
            continue;
        };
        let Ok(sig) = Signature::try_from(sig) else {
            continue;
        };
        let ok = match alg.as_str() {
            SHA1_WITH_RSA => VerifyingKey::<sha1::Sha1>::new(key).verify(&tbs, &sig),
            SHA256_WITH_RSA => VerifyingKey::<sha2::Sha256>::new(key).verify(&tbs, &sig),
            SHA384_WITH_RSA => VerifyingKey::<sha2::Sha384>::new(key).verify(&tbs, &sig),
            SHA512_WITH_RSA => VerifyingKey::<sha2::Sha512>::new(key).verify(&tbs, &sig),
            other => return Err(fail(format!("unsupported certificate signature {other}"))),
        };
        if ok.is_ok() {
            return Ok(());
        }
    }
    Err(fail("identity certificate was not issued by our SCEP CA"))
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
