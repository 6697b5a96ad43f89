//! The server's RSA key pair: decrypts the ADE server token and signs the DEP JWT.

use std::fmt;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::digest::DigestAlgorithm;
use crate::error::CryptoError;
use crate::rng::SysRng;
use crate::{oid, pem};

/// Size of generated keys; Apple asks for RSA-2048.
pub const GENERATED_KEY_BITS: usize = 2048;
/// Imported keys outside this range are refused: weaker ones are unsafe, larger ones
/// make every decryption needlessly slow in WebAssembly.
const IMPORT_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// An RSA private key. `Debug` shows only the key size.
#[derive(Clone)]
pub struct KeyPair {
    key: RsaPrivateKey,
}

impl KeyPair {
    /// A fresh RSA-2048 key from the platform's randomness.
    pub fn generate() -> Result<KeyPair, CryptoError> {
        let key = RsaPrivateKey::new(&mut SysRng, GENERATED_KEY_BITS)
            .map_err(|e| CryptoError::Failed(format!("RSA key generation: {e}")))?;
        Ok(KeyPair { key })
    }

    /// A fresh RSA key of `bits` (2048, 3072 or 4096). Larger keys are stronger but every
    /// signature costs several times more, which matters in WebAssembly.
    pub fn generate_with_bits(bits: usize) -> Result<KeyPair, CryptoError> {
        if ![2048, 3072, 4096].contains(&bits) {
            return Err(CryptoError::InvalidInput(format!(
                "RSA-{bits} is not offered (2048, 3072 or 4096 bits)"
            )));
        }
        let key = RsaPrivateKey::new(&mut SysRng, bits)
            .map_err(|e| CryptoError::Failed(format!("RSA key generation: {e}")))?;
        Ok(KeyPair { key })
    }

    /// Reads an unencrypted PKCS#8 `PrivateKeyInfo` (what [`KeyPair::to_pkcs8_der`] writes).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<KeyPair, CryptoError> {
        let key = RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| CryptoError::InvalidKey(format!("not an RSA PKCS#8 key: {e}")))?;
        Self::checked(key)
    }

    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl req -nodes`
    /// writes) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), so keys made by hand can be imported.
    pub fn from_pem(text: &str) -> Result<KeyPair, CryptoError> {
        let block = pem::find_block(text)
            .ok_or_else(|| CryptoError::InvalidKey("no PEM block found".into()))?;
        if block.has_headers || block.label.contains("ENCRYPTED") {
            return Err(CryptoError::InvalidKey(
                "encrypted private keys are not supported (export it with `openssl pkcs8 -topk8 -nocrypt`)"
                    .into(),
            ));
        }
        let der = Zeroizing::new(
            pem::decode_base64(block.body)
                .map_err(|e| CryptoError::InvalidKey(format!("PEM body: {e}")))?,
        );
        let key = match block.label {
            "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(&der)
                .map_err(|e| CryptoError::InvalidKey(format!("not an RSA PKCS#8 key: {e}")))?,
            "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(&der)
                .map_err(|e| CryptoError::InvalidKey(format!("not a PKCS#1 RSA key: {e}")))?,
            other => {
                return Err(CryptoError::InvalidKey(format!(
                    "PEM block is {other:?}, expected PRIVATE KEY or RSA PRIVATE KEY"
                )));
            }
        };
        Self::checked(key)
    }

    fn checked(key: RsaPrivateKey) -> Result<KeyPair, CryptoError> {
        let bits = key.size() * 8;
        if !IMPORT_BITS.contains(&bits) {
            return Err(CryptoError::InvalidKey(format!(
                "RSA-{bits} is not supported (2048 to 4096 bits)"
            )));
        }
        key.validate()
            .map_err(|e| CryptoError::InvalidKey(format!("inconsistent RSA key: {e}")))?;
        Ok(KeyPair { key })
    }

    /// PKCS#8 `PrivateKeyInfo` DER, wiped from memory when dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let doc = self
            .key
            .to_pkcs8_der()
            .map_err(|e| CryptoError::Failed(format!("PKCS#8 encoding: {e}")))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, LF line endings), for an admin export.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, CryptoError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| CryptoError::Failed(format!("PKCS#8 encoding: {e}")))
    }

    /// The public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        RsaPublicKey::from(&self.key)
            .to_public_key_der()
            .map(|d| d.into_vec())
            .map_err(|e| CryptoError::Failed(format!("SPKI encoding: {e}")))
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (JWT `RS256`), blinded.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let signer = SigningKey::<Sha256>::new(self.key.clone());
        signer
            .try_sign_with_rng(&mut SysRng, message)
            .map(|s| s.to_vec())
            .map_err(|e| CryptoError::Failed(format!("RSA signature: {e}")))
    }

    /// RSASSA-PKCS1-v1_5 over `message` hashed with `digest` (blinded).
    pub fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key
            .sign_with_rng(&mut SysRng, digest.pkcs1v15(), &digest.digest(message))
            .map_err(|e| CryptoError::Failed(format!("RSA signature: {e}")))
    }

    /// RSAES-PKCS1-v1_5 decryption (blinded). `None` on any failure: callers only learn
    /// that the key did not fit.
    pub(crate) fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.key
            .decrypt_blinded(&mut SysRng, Pkcs1v15Encrypt, ciphertext)
            .ok()
            .map(Zeroizing::new)
    }

    /// RSAES-PKCS1-v1_5 decryption of a content key of `key_len` bytes with implicit
    /// rejection: when the padding is wrong or the key has another length, the answer is
    /// a pseudo-random key derived from this private key and the ciphertext (the same for
    /// the same ciphertext), chosen without a branch on the padding. A caller that goes
    /// on the same way with either key (decrypts the content, which then fails) is no
    /// Bleichenbacher oracle through its answers or their timing past this point. The
    /// RSA private operation itself is blinded but not constant-time (the `rsa` crate,
    /// RUSTSEC-2023-0071): see docs/security.md.
    pub(crate) fn decrypt_key_implicit(
        &self,
        ciphertext: &[u8],
        key_len: usize,
    ) -> Zeroizing<Vec<u8>> {
        use hmac::{Hmac, Mac};
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        use sha2::Digest;
        use subtle::{ConditionallySelectable, ConstantTimeEq};
        let k = self.key.size();
        // The fallback key: HMAC-SHA256(H(private exponent), ciphertext), as long as needed.
        let secret = Zeroizing::new(sha2::Sha256::digest(self.key.d().to_bytes_be()).to_vec());
        let mut fallback = Zeroizing::new(Vec::with_capacity(key_len));
        let mut block = 0u8;
        while fallback.len() < key_len {
            let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(&secret).expect("any key length");
            mac.update(&[block]);
            mac.update(ciphertext);
            fallback.extend_from_slice(&mac.finalize().into_bytes());
            block = block.wrapping_add(1);
        }
        fallback.truncate(key_len);
        // Raw RSA (blinded); anything unusable becomes an all-zero block, which the
        // padding check below rejects like any other.
        let mut em = Zeroizing::new(vec![0u8; k]);
        if ciphertext.len() == k {
            let c = rsa::BigUint::from_bytes_be(ciphertext);
            if let Ok(m) = rsa::hazmat::rsa_decrypt_and_check(&self.key, Some(&mut SysRng), &c) {
                let bytes = Zeroizing::new(m.to_bytes_be());
                if bytes.len() <= k {
                    em[k - bytes.len()..].copy_from_slice(&bytes);
                }
            }
        }
        // 00 02 PS(≥ 8 non-zero) 00 M, with |M| = key_len, checked in constant time.
        let mut valid = em[0].ct_eq(&0) & em[1].ct_eq(&2);
        let sep = k.wrapping_sub(key_len + 1);
        let mut seen_zero = subtle::Choice::from(0);
        for (i, b) in em.iter().enumerate().skip(2) {
            let is_zero = b.ct_eq(&0);
            let before_sep = subtle::Choice::from(u8::from(i < sep));
            let at_sep = subtle::Choice::from(u8::from(i == sep));
            // Every padding byte before the separator is non-zero; the separator is zero.
            valid &= !(before_sep & is_zero);
            seen_zero |= at_sep & is_zero;
        }
        valid &= seen_zero & subtle::Choice::from(u8::from(key_len + 11 <= k));
        let mut out = Zeroizing::new(vec![0u8; key_len]);
        for i in 0..key_len {
            let m = em.get(k.wrapping_sub(key_len) + i).copied().unwrap_or(0);
            out[i] = u8::conditional_select(&fallback[i], &m, valid);
        }
        out
    }

    pub(crate) fn rsa(&self) -> &RsaPrivateKey {
        &self.key
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

/// An RSA public key from DER `SubjectPublicKeyInfo`, refused when it is another
/// algorithm or its modulus size is outside `bits`. The error text names what was wrong.
pub(crate) fn rsa_public_from_spki(
    spki_der: &[u8],
    bits: std::ops::RangeInclusive<usize>,
) -> Result<RsaPublicKey, String> {
    use der::Decode;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| format!("public key does not decode: {e}"))?;
    if spki.algorithm.oid != oid::RSA_ENCRYPTION {
        return Err(format!(
            "only RSA keys are accepted, this key is {}",
            spki.algorithm.oid
        ));
    }
    let key = RsaPublicKey::from_public_key_der(spki_der)
        .map_err(|e| format!("RSA public key does not decode: {e}"))?;
    let size = key.n().bits();
    if !bits.contains(&size) {
        return Err(format!(
            "RSA-{size} is outside the accepted {} to {} bits",
            bits.start(),
            bits.end()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPublicKey;

    fn encrypt(key: &KeyPair, msg: &[u8]) -> Vec<u8> {
        RsaPublicKey::from(key.rsa())
            .encrypt(&mut SysRng, Pkcs1v15Encrypt, msg)
            .unwrap()
    }

    /// A well-padded content key comes out as `decrypt_pkcs1v15` gives it; a wrong
    /// padding, a key of another length or garbage gives a key of the asked length that
    /// depends only on the ciphertext (the same twice), never an error.
    #[test]
    fn implicit_rejection() {
        let key = KeyPair::generate().unwrap();
        let cek = [7u8; 32];
        let good = encrypt(&key, &cek);
        assert_eq!(&*key.decrypt_key_implicit(&good, 32), &cek);
        assert_eq!(
            key.decrypt_pkcs1v15(&good).map(|k| k.to_vec()),
            Some(cek.to_vec())
        );

        let short = encrypt(&key, &[7u8; 16]);
        let mut tampered = good.clone();
        tampered[10] ^= 1;
        let garbage = vec![0x42u8; good.len()];
        for (what, c) in [
            ("another length", short),
            ("tampered", tampered),
            ("garbage", garbage),
            ("truncated", good[..100].to_vec()),
        ] {
            let a = key.decrypt_key_implicit(&c, 32);
            assert_eq!(a.len(), 32, "{what}");
            assert_ne!(&*a, &cek, "{what}");
            assert_eq!(
                a,
                key.decrypt_key_implicit(&c, 32),
                "{what}: not deterministic"
            );
        }
        // Another key: its own fallback.
        let other = KeyPair::generate().unwrap();
        assert_ne!(
            other.decrypt_key_implicit(&good, 32),
            key.decrypt_key_implicit(&encrypt(&key, &[1u8; 16]), 32)
        );
    }
}
