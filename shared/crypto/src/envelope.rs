//! CMS EnvelopedData with RSA PKCS#1 v1.5 key transport, both ways: the server token
//! (`token.rs`, `issue.rs`) and SCEP's pkcsPKIEnvelope (`scep.rs`) share the ciphers here.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::cert::Certificate;
use crate::error::CryptoError;
use crate::key::KeyPair;
use crate::oid;
use crate::rng::{self, SysRng};

/// Content-encryption algorithm of an EnvelopedData (all CBC with PKCS#7 padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    /// Triple DES (DES-EDE3-CBC): SCEP's `DES3`, what iOS uses when AES is not offered.
    DesEde3Cbc,
    /// Single DES: broken, only read (and answered) because micromdm's scepclient
    /// defaults to it. Never chosen by this crate on its own.
    DesCbc,
}

impl EnvelopeCipher {
    pub(crate) fn oid(self) -> spki::ObjectIdentifier {
        match self {
            EnvelopeCipher::Aes128Cbc => oid::AES128_CBC,
            EnvelopeCipher::Aes192Cbc => oid::AES192_CBC,
            EnvelopeCipher::Aes256Cbc => oid::AES256_CBC,
            EnvelopeCipher::DesEde3Cbc => oid::DES_EDE3_CBC,
            EnvelopeCipher::DesCbc => oid::DES_CBC,
        }
    }

    pub(crate) fn from_oid(oid: &spki::ObjectIdentifier) -> Option<EnvelopeCipher> {
        [
            EnvelopeCipher::Aes128Cbc,
            EnvelopeCipher::Aes192Cbc,
            EnvelopeCipher::Aes256Cbc,
            EnvelopeCipher::DesEde3Cbc,
            EnvelopeCipher::DesCbc,
        ]
        .into_iter()
        .find(|c| c.oid() == *oid)
    }

    pub fn name(self) -> &'static str {
        match self {
            EnvelopeCipher::Aes128Cbc => "AES-128-CBC",
            EnvelopeCipher::Aes192Cbc => "AES-192-CBC",
            EnvelopeCipher::Aes256Cbc => "AES-256-CBC",
            EnvelopeCipher::DesEde3Cbc => "DES-EDE3-CBC",
            EnvelopeCipher::DesCbc => "DES-CBC",
        }
    }

    pub(crate) fn block_len(self) -> usize {
        match self {
            EnvelopeCipher::DesEde3Cbc | EnvelopeCipher::DesCbc => 8,
            _ => 16,
        }
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            EnvelopeCipher::Aes128Cbc => 16,
            EnvelopeCipher::Aes192Cbc | EnvelopeCipher::DesEde3Cbc => 24,
            EnvelopeCipher::Aes256Cbc => 32,
            EnvelopeCipher::DesCbc => 8,
        }
    }

    /// A fresh random content key (DES keys with odd parity, as DES defines them).
    fn random_key(self) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(rng::bytes(self.key_len()));
        if matches!(self, EnvelopeCipher::DesCbc | EnvelopeCipher::DesEde3Cbc) {
            for b in key.iter_mut() {
                let high = *b & 0xfe;
                *b = high | ((high.count_ones() as u8 & 1) ^ 1);
            }
        }
        key
    }

    /// CBC encryption with PKCS#7 padding.
    pub(crate) fn encrypt(self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Vec<u8> {
        fn run<C>(key: &[u8], iv: &[u8], pt: &[u8], bs: usize) -> Vec<u8>
        where
            cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
            C: aes::cipher::BlockCipher + aes::cipher::BlockEncryptMut,
        {
            let mut buf = vec![0u8; pt.len() + bs];
            buf[..pt.len()].copy_from_slice(pt);
            // Key and IV lengths come from the cipher itself and the buffer has a spare
            // block for the padding, so neither step can fail.
            let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).expect("key and IV sizes");
            let n = enc
                .encrypt_padded_mut::<Pkcs7>(&mut buf, pt.len())
                .expect("room for padding")
                .len();
            buf.truncate(n);
            buf
        }
        let bs = self.block_len();
        match self {
            EnvelopeCipher::Aes128Cbc => run::<aes::Aes128>(key, iv, plaintext, bs),
            EnvelopeCipher::Aes192Cbc => run::<aes::Aes192>(key, iv, plaintext, bs),
            EnvelopeCipher::Aes256Cbc => run::<aes::Aes256>(key, iv, plaintext, bs),
            EnvelopeCipher::DesEde3Cbc => run::<des::TdesEde3>(key, iv, plaintext, bs),
            EnvelopeCipher::DesCbc => run::<des::Des>(key, iv, plaintext, bs),
        }
    }
}

/// Why content could not be decrypted; callers map it onto their own error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CipherError {
    /// Algorithm OID we do not implement (or refuse here).
    Unsupported(String),
    /// Damaged parameters, lengths or padding.
    Corrupt(String),
}

/// The content cipher of an EnvelopedData with its IV.
pub(crate) struct ContentAlg {
    pub cipher: EnvelopeCipher,
    iv: Vec<u8>,
}

impl ContentAlg {
    /// `allow_des`: single DES is accepted only where a known client needs it (SCEP).
    pub(crate) fn from_algorithm(
        alg: &AlgorithmIdentifierOwned,
        allow_des: bool,
    ) -> Result<ContentAlg, CipherError> {
        let cipher = EnvelopeCipher::from_oid(&alg.oid)
            .filter(|c| allow_des || *c != EnvelopeCipher::DesCbc)
            .ok_or_else(|| CipherError::Unsupported(alg.oid.to_string()))?;
        let iv = alg
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<OctetString>().ok())
            .ok_or_else(|| CipherError::Corrupt("content cipher has no IV".into()))?
            .into_bytes();
        if iv.len() != cipher.block_len() {
            return Err(CipherError::Corrupt(format!(
                "IV is {} bytes, the cipher needs {}",
                iv.len(),
                cipher.block_len()
            )));
        }
        Ok(ContentAlg { cipher, iv })
    }

    /// Checks the ciphertext is a whole number of blocks (public information).
    pub(crate) fn check_length(&self, ciphertext: &[u8]) -> Result<(), CipherError> {
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(self.cipher.block_len()) {
            return Err(CipherError::Corrupt(format!(
                "encrypted content is {} bytes, not a whole number of cipher blocks",
                ciphertext.len()
            )));
        }
        Ok(())
    }

    /// CBC decryption and PKCS#7 unpadding.
    pub(crate) fn decrypt(&self, key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CipherError> {
        fn run<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, CipherError>
        where
            cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
            C: aes::cipher::BlockCipher + aes::cipher::BlockDecryptMut,
        {
            let dec = cbc::Decryptor::<C>::new_from_slices(key, iv)
                .map_err(|_| CipherError::Corrupt("content key or IV has the wrong size".into()))?;
            dec.decrypt_padded_mut::<Pkcs7>(buf)
                .map(|p| p.len())
                .map_err(|_| CipherError::Corrupt("decrypted content has invalid padding".into()))
        }
        self.check_length(ciphertext)?;
        let mut buf = ciphertext.to_vec();
        let n = match self.cipher {
            EnvelopeCipher::Aes128Cbc => run::<aes::Aes128>(key, &self.iv, &mut buf),
            EnvelopeCipher::Aes192Cbc => run::<aes::Aes192>(key, &self.iv, &mut buf),
            EnvelopeCipher::Aes256Cbc => run::<aes::Aes256>(key, &self.iv, &mut buf),
            EnvelopeCipher::DesEde3Cbc => run::<des::TdesEde3>(key, &self.iv, &mut buf),
            EnvelopeCipher::DesCbc => run::<des::Des>(key, &self.iv, &mut buf),
        };
        match n {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut buf);
                Err(e)
            }
        }
    }
}

/// At most this many key-transport recipients are tried: each costs an RSA private-key
/// operation, and a SCEP request names one (rarely two) recipients.
const MAX_RECIPIENTS_TRIED: usize = 4;

/// Why [`open`] failed. Deliberately coarse: see [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenError {
    Unsupported(String),
    Corrupt(String),
    /// No recipient opened with the key, or the content was damaged: not told apart.
    Failed,
}

/// Decrypts attacker-supplied EnvelopedData with `key`, trying each RSA key-transport
/// recipient. Why it is built this way: a server that reveals whether PKCS#1 v1.5
/// unpadding succeeded is a Bleichenbacher oracle for its key. So the content key comes
/// from [`KeyPair::decrypt_key_implicit`] (a wrong padding or length gives a pseudo-random
/// key, chosen without a branch), the content is decrypted either way, and every failure
/// after the RSA step is the same [`OpenError::Failed`]; `accept` (e.g. "is a parseable
/// CSR") is part of that same success test.
pub(crate) fn open<T>(
    env: &EnvelopedData,
    key: &KeyPair,
    allow_des: bool,
    accept: impl Fn(&[u8]) -> Option<T>,
) -> Result<T, OpenError> {
    let eci = &env.encrypted_content;
    let alg = ContentAlg::from_algorithm(&eci.content_enc_alg, allow_des).map_err(|e| match e {
        CipherError::Unsupported(o) => OpenError::Unsupported(o),
        CipherError::Corrupt(d) => OpenError::Corrupt(d),
    })?;
    let ciphertext = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| OpenError::Corrupt("no encrypted content in the envelope".into()))?
        .as_bytes();
    alg.check_length(ciphertext).map_err(|e| match e {
        CipherError::Corrupt(d) | CipherError::Unsupported(d) => OpenError::Corrupt(d),
    })?;
    let ktris = env.recip_infos.0.iter().filter_map(|ri| match ri {
        RecipientInfo::Ktri(k) if k.key_enc_alg.oid == oid::RSA_ENCRYPTION => Some(k),
        _ => None,
    });
    let mut tried = 0;
    for ktri in ktris.take(MAX_RECIPIENTS_TRIED) {
        tried += 1;
        let cek = key.decrypt_key_implicit(ktri.enc_key.as_bytes(), alg.cipher.key_len());
        if let Ok(plaintext) = alg.decrypt(&cek, ciphertext) {
            let plaintext = Zeroizing::new(plaintext);
            if let Some(v) = accept(&plaintext) {
                return Ok(v);
            }
        }
    }
    if tried == 0 {
        return Err(OpenError::Unsupported(
            "no RSA key-transport recipient in the envelope".into(),
        ));
    }
    Err(OpenError::Failed)
}

/// DER ContentInfo(EnvelopedData) of `plaintext` for `recipient`'s RSA key, named by
/// issuer and serial number (what SCEP clients and S/MIME readers look up).
pub(crate) fn seal(
    plaintext: &[u8],
    recipient: &Certificate,
    cipher: EnvelopeCipher,
) -> Result<Vec<u8>, CryptoError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| CryptoError::Failed(format!("{what}: {e}"));
    let tbs = &recipient.x509().tbs_certificate;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| fail("recipient public key", &e))?;
    let public = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| CryptoError::InvalidCertificate(format!("recipient key is not RSA: {e}")))?;
    let cek = cipher.random_key();
    let iv = rng::bytes(cipher.block_len());
    let ciphertext = cipher.encrypt(&cek, &iv, plaintext);
    let enc_key = public
        .encrypt(&mut SysRng, Pkcs1v15Encrypt, &cek)
        .map_err(|e| fail("content key encryption", &e))?;
    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(enc_key).map_err(|e| fail("envelope", &e))?,
    };
    let recip_infos =
        SetOfVec::try_from(vec![RecipientInfo::Ktri(ktri)]).map_err(|e| fail("envelope", &e))?;
    let iv_param = Any::encode_from(&OctetString::new(iv).map_err(|e| fail("envelope", &e))?)
        .map_err(|e| fail("envelope", &e))?;
    let env = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(recip_infos),
        encrypted_content: EncryptedContentInfo {
            content_type: oid::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(iv_param),
            },
            encrypted_content: Some(
                OctetString::new(ciphertext).map_err(|e| fail("envelope", &e))?,
            ),
        },
        unprotected_attrs: None,
    };
    ContentInfo {
        content_type: oid::ID_ENVELOPED_DATA,
        content: Any::encode_from(&env).map_err(|e| fail("envelope", &e))?,
    }
    .to_der()
    .map_err(|e| fail("envelope", &e))
}

/// Parses DER/BER `ContentInfo(EnvelopedData)` (no trailing data allowed).
pub(crate) fn parse(ber_bytes: &[u8]) -> Result<EnvelopedData, String> {
    let (der, used) = crate::ber::cms_to_der(ber_bytes).map_err(|e| e.to_string())?;
    if used != ber_bytes.len() {
        return Err("unexpected data after the envelope".into());
    }
    let ci = ContentInfo::from_der(&der).map_err(|e| format!("not a CMS ContentInfo ({e})"))?;
    if ci.content_type != oid::ID_ENVELOPED_DATA {
        return Err(format!(
            "content type is {}, not enveloped data",
            ci.content_type
        ));
    }
    ci.content
        .decode_as::<EnvelopedData>()
        .map_err(|e| format!("EnvelopedData: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cipher_round_trips_and_des_keys_have_parity() {
        for c in [
            EnvelopeCipher::Aes128Cbc,
            EnvelopeCipher::Aes192Cbc,
            EnvelopeCipher::Aes256Cbc,
            EnvelopeCipher::DesEde3Cbc,
            EnvelopeCipher::DesCbc,
        ] {
            assert_eq!(EnvelopeCipher::from_oid(&c.oid()), Some(c));
            let key = c.random_key();
            assert_eq!(key.len(), c.key_len());
            if c.block_len() == 8 {
                assert!(key.iter().all(|b| b.count_ones() % 2 == 1), "{c:?}");
            }
            let iv = rng::bytes(c.block_len());
            for len in [0, 1, 15, 16, 17, 100] {
                let pt = rng::bytes(len);
                let ct = c.encrypt(&key, &iv, &pt);
                assert_eq!(ct.len() % c.block_len(), 0);
                assert!(ct.len() > pt.len());
                let alg = ContentAlg {
                    cipher: c,
                    iv: iv.clone(),
                };
                assert_eq!(alg.decrypt(&key, &ct).unwrap(), pt);
            }
        }
    }
}
