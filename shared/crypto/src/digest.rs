//! Digest algorithms and RSASSA-PKCS1-v1_5 with them, as CMS and PKCS#10 name them.
//! SHA-1 stays because SCEP clients in the field (micromdm's scepclient, older devices)
//! still sign with it; we only ever *create* SHA-1 signatures when a caller asks.

use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::Digest;
use spki::ObjectIdentifier;

use crate::{modpow, oid};

/// Hash used for a signature or a message digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

const ALL: [DigestAlgorithm; 4] = [
    DigestAlgorithm::Sha1,
    DigestAlgorithm::Sha256,
    DigestAlgorithm::Sha384,
    DigestAlgorithm::Sha512,
];

impl DigestAlgorithm {
    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha1 => oid::SHA1,
            DigestAlgorithm::Sha256 => oid::SHA256,
            DigestAlgorithm::Sha384 => oid::SHA384,
            DigestAlgorithm::Sha512 => oid::SHA512,
        }
    }

    /// `shaXWithRSAEncryption`, what X.509 and PKCS#10 put in `signatureAlgorithm`.
    pub(crate) fn rsa_signature_oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha1 => oid::SHA1_WITH_RSA,
            DigestAlgorithm::Sha256 => oid::SHA256_WITH_RSA,
            DigestAlgorithm::Sha384 => oid::SHA384_WITH_RSA,
            DigestAlgorithm::Sha512 => oid::SHA512_WITH_RSA,
        }
    }

    /// The digest an OID names, from the OID's contents as sent.
    pub(crate) fn from_oid_bytes(oid: &[u8]) -> Option<DigestAlgorithm> {
        ALL.into_iter().find(|d| d.oid().as_bytes() == oid)
    }

    /// [`DigestAlgorithm::from_rsa_signature_oid`] for an OID's contents as sent.
    pub(crate) fn from_rsa_signature_oid_bytes(oid: &[u8]) -> Option<DigestAlgorithm> {
        ALL.into_iter()
            .find(|d| d.rsa_signature_oid().as_bytes() == oid)
    }

    pub(crate) fn from_rsa_signature_oid(oid: &ObjectIdentifier) -> Option<DigestAlgorithm> {
        ALL.into_iter().find(|d| d.rsa_signature_oid() == *oid)
    }

    /// Name as SCEP `GetCACaps` and humans spell it.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => "SHA-1",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha384 => "SHA-384",
            DigestAlgorithm::Sha512 => "SHA-512",
        }
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            DigestAlgorithm::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            DigestAlgorithm::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            DigestAlgorithm::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            DigestAlgorithm::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    /// Whether `signature` is RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.2) by `key` over `message`
    /// hashed with `self`: what `rsa::RsaPublicKey::verify` checks, computed faster.
    ///
    /// `rsa` raises the signature to the public exponent with `BigUint::modpow`, which
    /// walks every bit of the exponent's 64-bit words in 4-bit windows, as a private
    /// exponent needs (the same work whatever its value): about 100 Montgomery
    /// multiplications for e = 65537, where square-and-multiply needs 17. Public exponent
    /// and signature are no secrets, so the shortcut leaks nothing. The arithmetic is in
    /// `modpow.rs`: in WebAssembly this operation is the largest single cost of verifying
    /// a CMS signature. `key` was built by `rsa`, which bounds the exponent (at most
    /// 2^33 − 1) and the modulus (at most 4096 bits), so a hostile certificate cannot make
    /// this loop long.
    pub fn verify_rsa(self, key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
        let prefix = self.pkcs1v15().prefix;
        let hashed = self.digest(message);
        let k = key.size();
        let t_len = prefix.len() + hashed.len();
        if signature.len() != k || k < t_len + 11 {
            return false;
        }
        let s = BigUint::from_bytes_be(signature);
        if &s >= key.n() {
            return false;
        }
        let m = modpow::public_modpow(&s, key.e(), key.n()).to_bytes_be();
        if m.len() > k {
            return false;
        }
        // EM = 0x00 || 0x01 || 0xFF... || 0x00 || DigestInfo prefix || H, compared whole.
        let mut expected = vec![0xFF; k];
        expected[0] = 0x00;
        expected[1] = 0x01;
        expected[k - t_len - 1] = 0x00;
        expected[k - t_len..k - hashed.len()].copy_from_slice(&prefix);
        expected[k - hashed.len()..].copy_from_slice(&hashed);
        // `m` lacks EM's leading zero bytes.
        expected[..k - m.len()].iter().all(|b| *b == 0) && expected[k - m.len()..] == m[..]
    }
}

/// RSA PKCS#1 v1.5 and SHA algorithm identifiers take no parameters: absent or NULL
/// (RFC 4055, RFC 5754). Anything else is not the algorithm it claims to be.
pub(crate) fn null_or_absent_params(alg: &spki::AlgorithmIdentifierOwned) -> bool {
    use der::Tagged;
    alg.parameters
        .as_ref()
        .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modpow::tests::{Seeded, bytes};
    use rsa::RsaPrivateKey;
    use rsa::rand_core::RngCore;

    /// What `rsa`'s own verifier says.
    fn reference(d: DigestAlgorithm, key: &RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
        key.verify(d.pkcs1v15(), &d.digest(msg), sig).is_ok()
    }

    fn agree(d: DigestAlgorithm, key: &RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
        let ours = d.verify_rsa(key, msg, sig);
        assert_eq!(ours, reference(d, key, msg, sig), "{} bytes", sig.len());
        ours
    }

    fn sign(d: DigestAlgorithm, key: &RsaPrivateKey, msg: &[u8]) -> Vec<u8> {
        key.sign(d.pkcs1v15(), &d.digest(msg))
            .expect("test signature")
    }

    fn check_key(d: DigestAlgorithm, rng: &mut Seeded, key: &RsaPrivateKey) {
        let public = key.to_public_key();
        for _ in 0..4 {
            let len = (rng.next_u32() % 300) as usize;
            let msg = bytes(rng, len);
            let sig = sign(d, key, &msg);
            assert!(agree(d, &public, &msg, &sig), "a good signature");
            // Any flipped bit of signature or message.
            let mut bad = sig.clone();
            let i = rng.next_u32() as usize % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            assert!(!agree(d, &public, &msg, &bad));
            let mut other = msg.clone();
            other.push(rng.next_u32() as u8);
            assert!(!agree(d, &public, &other, &sig));
            // Wrong lengths, zero, one, the modulus itself and beyond.
            let mut longer = vec![0];
            longer.extend_from_slice(&sig);
            assert!(!agree(d, &public, &msg, &longer));
            assert!(!agree(d, &public, &msg, &sig[1..]));
            let k = public.size();
            assert!(!agree(d, &public, &msg, &vec![0; k]));
            let mut one = vec![0; k];
            one[k - 1] = 1;
            assert!(!agree(d, &public, &msg, &one));
            assert!(!agree(d, &public, &msg, &public.n().to_bytes_be()));
            assert!(!agree(d, &public, &msg, &vec![0xFF; k]));
            // Signed with another digest.
            if d != DigestAlgorithm::Sha1 {
                let sha1 = sign(DigestAlgorithm::Sha1, key, &msg);
                assert!(!agree(d, &public, &msg, &sha1));
            }
        }
    }

    #[test]
    fn verification_agrees_with_the_rsa_crate() {
        let mut rng = Seeded(20240611);
        let exps = [3u64, 17, 65_537, 0x1_0000_0001];
        for (i, bits) in [1024usize, 1024, 1024, 2048].into_iter().enumerate() {
            let key = RsaPrivateKey::new_with_exp(&mut rng, bits, &BigUint::from(exps[i]))
                .expect("test key");
            for d in ALL {
                check_key(d, &mut rng, &key);
            }
        }
    }
}
