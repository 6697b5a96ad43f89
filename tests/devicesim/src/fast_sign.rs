//! RSA signatures of simulated devices made with `ring` (native, tens of times faster
//! than the pure-Rust `rsa` the server and `mdm-crypto` use): a device signs every message
//! it sends, and a benchmark of thousands of simulated devices must measure the server,
//! not the signing of its clients. Keys ring cannot take (under 2048 bits, SHA-1) go
//! through `mdm-crypto` as before. The signature is the same RSASSA-PKCS1-v1_5 either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use mdm_crypto::{Certificate, CryptoError, DigestAlgorithm, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

/// ring's form of each key used so far, by the certificate that holds its public key.
/// ring's key by certificate DER (`None`: ring cannot use that key).
type KeyCache = Mutex<HashMap<Vec<u8>, Option<Arc<RsaKeyPair>>>>;

fn keys() -> &'static KeyCache {
    static KEYS: OnceLock<KeyCache> = OnceLock::new();
    KEYS.get_or_init(Mutex::default)
}

fn ring_key(key: &KeyPair, cert: &Certificate) -> Option<Arc<RsaKeyPair>> {
    let mut keys = keys().lock().unwrap_or_else(|e| e.into_inner());
    keys.entry(cert.der().to_vec())
        .or_insert_with(|| {
            let der = key.to_pkcs8_der().ok()?;
            RsaKeyPair::from_pkcs8(&der).ok().map(Arc::new)
        })
        .clone()
}

/// RSASSA-PKCS1-v1_5 of `message` hashed with `digest`, by `key` (whose certificate is
/// `cert`).
pub fn sign(
    key: &KeyPair,
    cert: &Certificate,
    digest: DigestAlgorithm,
    message: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let fast = (digest == DigestAlgorithm::Sha256)
        .then(|| ring_key(key, cert))
        .flatten();
    let Some(kp) = fast else {
        return key.sign(digest, message);
    };
    let mut sig = vec![0; kp.public().modulus_len()];
    kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
        .map_err(|_| CryptoError::Failed("RSA signature (ring)".into()))?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_and_rsa_make_the_same_signature() {
        // PKCS#1 v1.5 signatures are deterministic: both must give the same bytes.
        let key = KeyPair::generate().unwrap();
        let cert =
            mdm_crypto::self_signed_certificate(&key, "sim", 1_800_000_000, 1_900_000_000).unwrap();
        let msg = b"signed attributes";
        let slow = key.sign(DigestAlgorithm::Sha256, msg).unwrap();
        assert_eq!(
            sign(&key, &cert, DigestAlgorithm::Sha256, msg).unwrap(),
            slow
        );
        assert_eq!(
            sign(&key, &cert, DigestAlgorithm::Sha256, msg).unwrap(),
            slow,
            "cached"
        );
    }
}
