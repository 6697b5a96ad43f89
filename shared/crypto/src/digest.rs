//! Digest algorithms and RSASSA-PKCS1-v1_5 with them, as CMS and PKCS#10 name them.
//! SHA-1 stays because SCEP clients in the field (micromdm's scepclient, older devices)
//! still sign with it; we only ever *create* SHA-1 signatures when a caller asks.

use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::Digest;
use spki::ObjectIdentifier;

use crate::oid;

/// Hash used for a signature or a message digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

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

    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<DigestAlgorithm> {
        [
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|d| d.oid() == *oid)
    }

    pub(crate) fn from_rsa_signature_oid(oid: &ObjectIdentifier) -> Option<DigestAlgorithm> {
        [
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|d| d.rsa_signature_oid() == *oid)
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

    /// Whether `signature` is RSASSA-PKCS1-v1_5 by `key` over `message` hashed with `self`.
    pub(crate) fn verify_rsa(self, key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
        key.verify(self.pkcs1v15(), &self.digest(message), signature)
            .is_ok()
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
