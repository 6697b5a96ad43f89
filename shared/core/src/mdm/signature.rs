//! `Mdm-Signature`: a detached CMS SignedData over the exact request body, signed by the
//! device's identity (certificate embedded). Verified here: the body's digest equals the
//! signed `messageDigest` attribute and the RSA signature over the signed attributes is
//! the signer certificate's. Which CA issued that certificate is checked by the caller
//! (the SCEP CA), as is the binding of the certificate to an enrollment: the certificate
//! itself is not covered by the device's signature, so only a certificate that chains to
//! our CA and whose hash is bound to the enrollment may be trusted.

use base64::Engine;
use der::{Decode, Encode};
use rsa::BigUint;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use x509_cert::Certificate;

use super::signed_data::{self, ReadError, SignedDataView};

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
    // Read in place when it is DER; BER (indefinite lengths) is converted first.
    match signed_data::read(&raw) {
        Ok(sd) => verify_read(&sd, body),
        Err(ReadError::NotDer) => {
            let (der, used) = mdm_crypto::cms_to_der(&raw).map_err(|e| fail(e.to_string()))?;
            if used != raw.len() {
                return Err(fail("trailing data after the SignedData"));
            }
            let sd = signed_data::read(&der).map_err(|e| fail(e.to_string()))?;
            verify_read(&sd, body)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

fn verify_read(sd: &SignedDataView<'_>, body: &[u8]) -> Result<Signer, SignatureError> {
    let sha1 = match sd.digest_algorithm {
        signed_data::oid::SHA1 => true,
        signed_data::oid::SHA256 => false,
        _ => return Err(fail("unsupported digest")),
    };
    let body_digest = if sha1 {
        sha1::Sha1::digest(body).to_vec()
    } else {
        sha2::Sha256::digest(body).to_vec()
    };
    if sd.message_digest != body_digest.as_slice() {
        return Err(fail("body does not match the signed digest"));
    }
    let cert = &sd.certificate;
    let Some((n, e)) = cert.rsa_key else {
        return Err(fail("signer key is not RSA"));
    };
    // `rsa` bounds the modulus (at most 4096 bits) and the exponent, which keeps
    // `pkcs1v15_verify` short for any certificate.
    let key = rsa::RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
        .map_err(|_| fail("signer key is not a usable RSA key"))?;
    let signed = sd.signed_attributes_der();
    let ok = if sha1 {
        pkcs1v15_verify::<sha1::Sha1>(&key, &signed, sd.signature)
    } else {
        pkcs1v15_verify::<sha2::Sha256>(&key, &signed, sd.signature)
    };
    if !ok {
        return Err(fail("signature does not verify"));
    }
    if cert.inner_algorithm != cert.outer_algorithm {
        return Err(fail(
            "certificate's signatureAlgorithm differs from the one in tbsCertificate",
        ));
    }
    Ok(Signer {
        certificate_der: cert.der.to_vec(),
        cert_hash: hex::encode(sha2::Sha256::digest(cert.tbs)),
        der_hash: hex::encode(sha2::Sha256::digest(cert.der)),
        not_before: cert.not_before,
        not_after: cert.not_after,
    })
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) of `sig` over `message` hashed with
/// `D`: what `rsa::pkcs1v15::VerifyingKey::verify` checks, computed faster.
///
/// `rsa` raises the signature to the public exponent with `BigUint::modpow`, which walks
/// every bit of the exponent's 64-bit words in 4-bit windows, as a private exponent needs
/// (the same work whatever its value): about 100 Montgomery multiplications for
/// e = 65537, where square-and-multiply needs 17. Public exponent and signature are no
/// secrets, so the shortcut leaks nothing. The arithmetic is in `mdm/modpow.rs`: in
/// WebAssembly this operation is the largest single cost of a device request. `key` was
/// built by `rsa`, which bounds the exponent (at most 2^33 − 1) and the modulus (at most
/// 4096 bits), so a hostile certificate cannot make this loop long.
pub fn pkcs1v15_verify<D>(key: &rsa::RsaPublicKey, message: &[u8], sig: &[u8]) -> bool
where
    D: Digest + der::oid::AssociatedOid,
{
    let padding = Pkcs1v15Sign::new::<D>();
    let hashed = D::digest(message);
    let k = key.size();
    let t_len = padding.prefix.len() + hashed.len();
    if sig.len() != k || k < t_len + 11 {
        return false;
    }
    let s = BigUint::from_bytes_be(sig);
    if &s >= key.n() {
        return false;
    }
    let m = super::modpow::public_modpow(&s, key.e(), key.n()).to_bytes_be();
    if m.len() > k {
        return false;
    }
    // EM = 0x00 || 0x01 || 0xFF... || 0x00 || DigestInfo prefix || H, compared whole.
    let mut expected = vec![0xFF; k];
    expected[0] = 0x00;
    expected[1] = 0x01;
    expected[k - t_len - 1] = 0x00;
    expected[k - t_len..k - hashed.len()].copy_from_slice(&padding.prefix);
    expected[k - hashed.len()..].copy_from_slice(&hashed);
    // `m` lacks EM's leading zero bytes.
    expected[..k - m.len()].iter().all(|b| *b == 0) && expected[k - m.len()..] == m[..]
}

/// Parses a certificate (DER), for callers that check issuers.
pub fn certificate(der: &[u8]) -> Option<Certificate> {
    Certificate::from_der(der).ok()
}

/// Store key of our SCEP CA certificate (DER, or PEM), written by
/// [`crate::scep::ca::authority`]. While it is absent the device endpoints refuse every
/// identity ([`crate::device_auth::authenticate_device`]).
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
/// this when no CA exists ([`crate::device_auth::authenticate_device`]).
///
/// Checked: the issuer name equals the CA's subject and the certificate's signature
/// verifies with the CA's RSA key (SHA-1/256/384/512). Validity dates are not checked:
/// devices keep signing with an identity until they renew it.
pub fn require_issued_by(identity_der: &[u8], ca_certs: &[Vec<u8>]) -> Result<(), SignatureError> {
    if ca_certs.is_empty() {
        return Ok(());
    }
    let leaf = certificate(identity_der).ok_or_else(|| fail("identity certificate unreadable"))?;
    if leaf.signature_algorithm != leaf.tbs_certificate.signature {
        return Err(fail(
            "identity certificate's signatureAlgorithm differs from the one in tbsCertificate",
        ));
    }
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
        let ok = match alg.as_str() {
            SHA1_WITH_RSA => pkcs1v15_verify::<sha1::Sha1>(&key, &tbs, sig),
            SHA256_WITH_RSA => pkcs1v15_verify::<sha2::Sha256>(&key, &tbs, sig),
            SHA384_WITH_RSA => pkcs1v15_verify::<sha2::Sha384>(&key, &tbs, sig),
            SHA512_WITH_RSA => pkcs1v15_verify::<sha2::Sha512>(&key, &tbs, sig),
            other => return Err(fail(format!("unsupported certificate signature {other}"))),
        };
        if ok {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
    use rsa::rand_core::{CryptoRng, RngCore};
    use rsa::signature::{SignatureEncoding, Signer, Verifier};

    /// A seeded generator (splitmix64): reproducible keys and inputs, test use only.
    pub(crate) struct Seeded(pub(crate) u64);

    impl Seeded {
        /// Below `n` (> 0); the slight modulo bias does not matter to tests.
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }
    }

    impl RngCore for Seeded {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for Seeded {}

    pub(crate) fn bytes(rng: &mut Seeded, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        rng.fill_bytes(&mut v);
        v
    }

    /// What `rsa`'s own verifier says.
    fn reference<D>(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool
    where
        D: Digest + der::oid::AssociatedOid,
    {
        Signature::try_from(sig)
            .is_ok_and(|s| VerifyingKey::<D>::new(key.clone()).verify(msg, &s).is_ok())
    }

    fn agree<D>(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool
    where
        D: Digest + der::oid::AssociatedOid,
    {
        let ours = pkcs1v15_verify::<D>(key, msg, sig);
        assert_eq!(ours, reference::<D>(key, msg, sig), "{} bytes", sig.len());
        ours
    }

    fn check_key<D>(rng: &mut Seeded, key: &rsa::RsaPrivateKey)
    where
        D: Digest + der::oid::AssociatedOid,
    {
        let public = key.to_public_key();
        let signer = SigningKey::<D>::new(key.clone());
        for _ in 0..4 {
            let len = (rng.next_u32() % 300) as usize;
            let msg = bytes(rng, len);
            let sig = signer.sign(&msg).to_vec();
            assert!(agree::<D>(&public, &msg, &sig), "a good signature");
            // Any flipped bit of signature or message.
            let mut bad = sig.clone();
            let i = rng.next_u32() as usize % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            assert!(!agree::<D>(&public, &msg, &bad));
            let mut other = msg.clone();
            other.push(rng.next_u32() as u8);
            assert!(!agree::<D>(&public, &other, &sig));
            // Wrong lengths, zero, one, the modulus itself and beyond.
            let mut longer = vec![0];
            longer.extend_from_slice(&sig);
            assert!(!agree::<D>(&public, &msg, &longer));
            assert!(!agree::<D>(&public, &msg, &sig[1..]));
            let k = public.size();
            assert!(!agree::<D>(&public, &msg, &vec![0; k]));
            let mut one = vec![0; k];
            one[k - 1] = 1;
            assert!(!agree::<D>(&public, &msg, &one));
            assert!(!agree::<D>(&public, &msg, &public.n().to_bytes_be()));
            assert!(!agree::<D>(&public, &msg, &vec![0xFF; k]));
            // Signed with another digest.
            let sha1 = SigningKey::<sha1::Sha1>::new(key.clone())
                .sign(&msg)
                .to_vec();
            if std::any::type_name::<D>() != std::any::type_name::<sha1::Sha1>() {
                assert!(!agree::<D>(&public, &msg, &sha1));
            }
        }
    }

    #[test]
    fn verification_agrees_with_the_rsa_crate() {
        let mut rng = Seeded(20240611);
        let exps = [3u64, 17, 65_537, 0x1_0000_0001];
        for (i, bits) in [1024usize, 1024, 1024, 2048].into_iter().enumerate() {
            let key = rsa::RsaPrivateKey::new_with_exp(&mut rng, bits, &BigUint::from(exps[i]))
                .expect("test key");
            check_key::<sha1::Sha1>(&mut rng, &key);
            check_key::<sha2::Sha256>(&mut rng, &key);
            check_key::<sha2::Sha384>(&mut rng, &key);
            check_key::<sha2::Sha512>(&mut rng, &key);
        }
    }
}
