//! Test-only helpers: fixtures, one shared generated key, and an EnvelopedData encryptor
//! written by hand (independent of the decryptor, with knobs for algorithms and
//! recipient identifiers the openssl fixtures cannot vary at runtime).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::Engine;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use mdm_crypto::{Certificate, KeyPair};
use rand_core::{OsRng, RngCore};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier};
use x509_cert::ext::pkix::SubjectKeyIdentifier;

pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub const RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
pub const RC2_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.2");

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

/// Real-world artifacts shared by the project (`tests/vectors`).
pub fn vector(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn dep_key() -> KeyPair {
    KeyPair::from_pem(&fixture_str("dep_key.pem")).unwrap()
}

pub fn dep_cert() -> Certificate {
    Certificate::from_pem(&fixture_str("dep_cert.pem")).unwrap()
}

/// RSA generation is slow; every test in a binary shares one generated key.
pub fn generated_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().unwrap())
}

pub const TOKEN_JSON: &str = r#"{"consumer_key":"CK_rt42","consumer_secret":"CS_rt42secret","access_token":"AT_rt42secret","access_secret":"AS_rt42secret","access_token_expiry":"2030-01-02T03:04:05Z"}"#;

/// A token plaintext the way Apple lays it out (header block, CRLF, markers).
pub fn token_plaintext(json: &str) -> Vec<u8> {
    format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\r\n{json}\r\n-----END MESSAGE-----\r\n"
    )
    .into_bytes()
}

#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
}

impl Alg {
    pub const ALL: [Alg; 4] = [Alg::Aes128, Alg::Aes192, Alg::Aes256, Alg::DesEde3];

    fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            Alg::Aes128 => "2.16.840.1.101.3.4.1.2",
            Alg::Aes192 => "2.16.840.1.101.3.4.1.22",
            Alg::Aes256 => "2.16.840.1.101.3.4.1.42",
            Alg::DesEde3 => "1.2.840.113549.3.7",
        })
    }

    fn key_len(self) -> usize {
        match self {
            Alg::Aes128 => 16,
            Alg::Aes192 | Alg::DesEde3 => 24,
            Alg::Aes256 => 32,
        }
    }

    fn block_len(self) -> usize {
        match self {
            Alg::DesEde3 => 8,
            _ => 16,
        }
    }

    fn encrypt(self, key: &[u8], iv: &[u8], pt: &[u8]) -> Vec<u8> {
        fn run<C>(key: &[u8], iv: &[u8], pt: &[u8], bs: usize) -> Vec<u8>
        where
            cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
            C: aes::cipher::BlockCipher + aes::cipher::BlockEncryptMut,
        {
            let mut buf = vec![0u8; pt.len() + bs];
            buf[..pt.len()].copy_from_slice(pt);
            let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).unwrap();
            enc.encrypt_padded_mut::<Pkcs7>(&mut buf, pt.len())
                .unwrap()
                .to_vec()
        }
        let bs = self.block_len();
        match self {
            Alg::Aes128 => run::<aes::Aes128>(key, iv, pt, bs),
            Alg::Aes192 => run::<aes::Aes192>(key, iv, pt, bs),
            Alg::Aes256 => run::<aes::Aes256>(key, iv, pt, bs),
            Alg::DesEde3 => run::<des::TdesEde3>(key, iv, pt, bs),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RidKind {
    IssuerSerial,
    SubjectKeyId,
}

/// Knobs for [`encrypt`]; the defaults make a well-formed AES-256 token.
#[derive(Clone, Debug)]
pub struct Options {
    pub alg: Alg,
    pub rid: RidKind,
    /// Replaces the content-encryption algorithm OID (unsupported-algorithm tests).
    pub content_oid: Option<ObjectIdentifier>,
    /// Replaces the key-encryption algorithm OID.
    pub key_enc_oid: Option<ObjectIdentifier>,
    /// Content key of this length instead of the cipher's.
    pub cek_len: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            alg: Alg::Aes256,
            rid: RidKind::IssuerSerial,
            content_oid: None,
            key_enc_oid: None,
            cek_len: None,
        }
    }
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    b
}

fn rid_for(cert: &x509_cert::Certificate, kind: RidKind) -> RecipientIdentifier {
    match kind {
        RidKind::IssuerSerial => {
            RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            })
        }
        RidKind::SubjectKeyId => {
            let ext = cert
                .tbs_certificate
                .extensions
                .as_ref()
                .and_then(|exts| {
                    exts.iter()
                        .find(|e| e.extn_id == ObjectIdentifier::new_unwrap("2.5.29.14"))
                })
                .expect("certificate has a subject key identifier");
            RecipientIdentifier::SubjectKeyIdentifier(
                SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()).unwrap(),
            )
        }
    }
}

/// DER ContentInfo(EnvelopedData) of `plaintext` for each recipient certificate (DER).
pub fn encrypt(plaintext: &[u8], recipients: &[&[u8]], opts: &Options) -> Vec<u8> {
    let cek = random(opts.cek_len.unwrap_or(opts.alg.key_len()));
    let iv = random(opts.alg.block_len());
    let mut body_key = cek.clone();
    body_key.resize(opts.alg.key_len(), 0);
    let ciphertext = opts.alg.encrypt(&body_key, &iv, plaintext);

    let infos: Vec<RecipientInfo> = recipients
        .iter()
        .map(|der| {
            let cert = x509_cert::Certificate::from_der(der).unwrap();
            let spki = cert
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap();
            let public = RsaPublicKey::from_public_key_der(&spki).unwrap();
            let enc_key = public.encrypt(&mut OsRng, Pkcs1v15Encrypt, &cek).unwrap();
            RecipientInfo::Ktri(KeyTransRecipientInfo {
                version: if opts.rid == RidKind::IssuerSerial {
                    CmsVersion::V0
                } else {
                    CmsVersion::V2
                },
                rid: rid_for(&cert, opts.rid),
                key_enc_alg: AlgorithmIdentifierOwned {
                    oid: opts.key_enc_oid.unwrap_or(RSA_ENCRYPTION),
                    parameters: Some(Any::null()),
                },
                enc_key: OctetString::new(enc_key).unwrap(),
            })
        })
        .collect();
    let env = EnvelopedData {
        version: if opts.rid == RidKind::IssuerSerial {
            CmsVersion::V0
        } else {
            CmsVersion::V2
        },
        originator_info: None,
        recip_infos: RecipientInfos(SetOfVec::try_from(infos).unwrap()),
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: opts.content_oid.unwrap_or(opts.alg.oid()),
                parameters: Some(Any::encode_from(&OctetString::new(iv).unwrap()).unwrap()),
            },
            encrypted_content: Some(OctetString::new(ciphertext).unwrap()),
        },
        unprotected_attrs: None,
    };
    ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::encode_from(&env).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// Wraps DER the way ABM delivers it: MIME headers, CRLF, 76-column base64.
pub fn smime(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from(
        "MIME-Version: 1.0\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\
         Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The base64 body of an S/MIME message (everything after the first empty line).
pub fn smime_body(smime: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(smime.to_vec())
        .unwrap()
        .replace("\r\n", "\n");
    let (_, body) = text.split_once("\n\n").unwrap();
    body.as_bytes().to_vec()
}

pub fn openssl_available() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One SCEP CA (CA + RA, RSA-2048) shared by every test in a binary.
pub fn test_ca() -> &'static mdm_crypto::CertificateAuthority {
    static CA: OnceLock<mdm_crypto::CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| mdm_crypto::CertificateAuthority::generate("Test MDM SCEP CA", NOW).unwrap())
}

/// A second generated key, for "someone else" cases.
pub fn other_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().unwrap())
}

/// The tests' "now": 2025-11-23T00:00:00Z.
pub const NOW: i64 = 1_763_856_000;

/// A scratch directory for files handed to the openssl CLI, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mdm-crypto-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Runs `openssl <args>` in `dir`; panics with a clear message when the CLI is missing
/// (these interop tests must not pass silently without it).
pub fn openssl(dir: &TempDir, args: &[&str]) -> std::process::Output {
    std::process::Command::new("openssl")
        .args(args)
        .current_dir(&dir.0)
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl CLI is required for the interop tests and could not run: {e}")
        })
}

/// Like [`openssl`], asserting success and showing openssl's stderr otherwise.
pub fn openssl_ok(dir: &TempDir, args: &[&str]) -> std::process::Output {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
