//! A fake "Apple iPhone Device CA" and the device identities it issues.
//!
//! Real devices sign their ADE MachineInfo with a per-device RSA-1024 certificate
//! (`CN=<UUID>`, `C=US, ST=CA, L=Cupertino, O=Apple Inc., OU=iPhone`, EKU serverAuth and
//! clientAuth) issued by `C=US, O=Apple Inc., OU=Apple iPhone, CN=Apple iPhone Device CA`
//! (Apple: "Device Assignment"). This CA has the same subject but its own key: give
//! the server its certificate through the `apple_device_ca` variable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::{BitString, GeneralizedTime, OctetString, UtcTime};
use der::oid::AssociatedOid;
use der::{Any, Decode, Encode};
use mdm_crypto::Certificate;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::SimError;

/// Subject of Apple's real device CA (RFC 4514 order: most specific first).
pub const APPLE_DEVICE_CA_SUBJECT: &str =
    "CN=Apple iPhone Device CA,OU=Apple iPhone,O=Apple Inc.,C=US";
/// Apple's device CA expired on this day (2014-04-16) and still signs device certificates.
pub const APPLE_DEVICE_CA_NOT_AFTER: i64 = 1_397_606_400;
/// Size of device identity keys, as on real devices.
pub const DEVICE_KEY_BITS: usize = 1024;
const CA_KEY_BITS: usize = 2048;
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const KP_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const KP_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn rng() -> rand_core::OsRng {
    rand_core::OsRng
}

/// A fake Apple device CA. Cloning shares nothing mutable; keep one per test.
#[derive(Clone)]
pub struct FakeAppleCa {
    key: RsaPrivateKey,
    name: Name,
    cert: Certificate,
}

impl std::fmt::Debug for FakeAppleCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAppleCa")
            .field("subject", &self.cert.subject())
            .finish_non_exhaustive()
    }
}

impl FakeAppleCa {
    /// A CA valid from ten years ago to ten years ahead (RSA-2048).
    pub fn generate() -> Result<FakeAppleCa, SimError> {
        let now = now_unix();
        Self::generate_valid(now - 10 * 365 * 86_400, now + 10 * 365 * 86_400)
    }

    /// A CA that expired when Apple's did (2014-04-16) and still issues, as Apple's does:
    /// a server must not check the CA's validity dates.
    pub fn generate_expired() -> Result<FakeAppleCa, SimError> {
        Self::generate_valid(1_176_163_200, APPLE_DEVICE_CA_NOT_AFTER)
    }

    fn generate_valid(not_before: i64, not_after: i64) -> Result<FakeAppleCa, SimError> {
        let key = RsaPrivateKey::new(&mut rng(), CA_KEY_BITS)
            .map_err(|e| SimError::Crypto(format!("CA key: {e}")))?;
        let name = name(APPLE_DEVICE_CA_SUBJECT)?;
        let spki = spki_of(&key)?;
        let ski = key_id(&spki);
        let exts = vec![
            ext(
                BasicConstraints::OID,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
            )?,
            ext(
                KeyUsage::OID,
                true,
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            )?,
            ext(
                SubjectKeyIdentifier::OID,
                false,
                &SubjectKeyIdentifier(octets(&ski)?),
            )?,
        ];
        let cert = build(
            &key,
            name.clone(),
            name.clone(),
            spki,
            (not_before, not_after),
            exts,
        )?;
        Ok(FakeAppleCa { key, name, cert })
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn cert_der(&self) -> &[u8] {
        self.cert.der()
    }

    /// PEM: the value for the server's `apple_device_ca` variable.
    pub fn cert_pem(&self) -> String {
        self.cert.to_pem()
    }

    /// A device identity for `udid`: RSA-1024, `CN=<udid>` with Apple's other subject
    /// attributes, EKU serverAuth + clientAuth, valid from now for ten years.
    pub fn issue_device_identity(&self, udid: &str) -> Result<DeviceIdentity, SimError> {
        self.issue_device_identity_for(udid, generate_device_key()?)
    }

    /// [`FakeAppleCa::issue_device_identity`] for a key made beforehand (see
    /// [`generate_device_key`]): many devices may share one key, each with its own
    /// certificate, where generating a key per device would take too long.
    pub fn issue_device_identity_for(
        &self,
        udid: &str,
        key: RsaPrivateKey,
    ) -> Result<DeviceIdentity, SimError> {
        let escaped: String = udid
            .chars()
            .flat_map(|c| {
                let esc = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=');
                esc.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect();
        let subject = name(&format!(
            "CN={escaped},OU=iPhone,O=Apple Inc.,L=Cupertino,ST=CA,C=US"
        ))?;
        let spki = spki_of(&key)?;
        let ski = key_id(&spki);
        let issuer_ski = key_id(&spki_of(&self.key)?);
        let oid = ObjectIdentifier::new_unwrap;
        let exts = vec![
            ext(
                BasicConstraints::OID,
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            )?,
            ext(
                KeyUsage::OID,
                true,
                &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
            )?,
            ext(
                ExtendedKeyUsage::OID,
                false,
                &ExtendedKeyUsage(vec![oid(KP_SERVER_AUTH), oid(KP_CLIENT_AUTH)]),
            )?,
            ext(
                SubjectKeyIdentifier::OID,
                false,
                &SubjectKeyIdentifier(octets(&ski)?),
            )?,
            ext(
                AuthorityKeyIdentifier::OID,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(octets(&issuer_ski)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            )?,
        ];
        let now = now_unix();
        let cert = build(
            &self.key,
            self.name.clone(),
            subject,
            spki,
            (now - 600, now + 10 * 365 * 86_400),
            exts,
        )?;
        Ok(DeviceIdentity { key, cert })
    }
}

/// A key of the size of real devices' Apple identities ([`DEVICE_KEY_BITS`]).
pub fn generate_device_key() -> Result<RsaPrivateKey, SimError> {
    RsaPrivateKey::new(&mut rng(), DEVICE_KEY_BITS)
        .map_err(|e| SimError::Crypto(format!("device key: {e}")))
}

/// A device's Apple identity: the RSA-1024 key and the certificate [`FakeAppleCa`] issued.
#[derive(Clone)]
pub struct DeviceIdentity {
    pub(crate) key: RsaPrivateKey,
    pub(crate) cert: Certificate,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("subject", &self.cert.subject())
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn key(&self) -> &RsaPrivateKey {
        &self.key
    }
}

fn name(rfc4514: &str) -> Result<Name, SimError> {
    rfc4514
        .parse::<Name>()
        .map_err(|e| SimError::Crypto(format!("name {rfc4514:?}: {e}")))
}

fn spki_of(key: &RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned, SimError> {
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| SimError::Crypto(format!("public key: {e}")))?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes())
        .map_err(|e| SimError::Crypto(format!("public key: {e}")))
}

/// RFC 5280 §4.2.1.2 method 1 (SHA-1 of the key bits), as Apple's CA does.
fn key_id(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

fn octets(b: &[u8]) -> Result<OctetString, SimError> {
    OctetString::new(b).map_err(|e| SimError::Crypto(e.to_string()))
}

fn ext(id: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension, SimError> {
    let der = value
        .to_der()
        .map_err(|e| SimError::Crypto(format!("extension {id}: {e}")))?;
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: octets(&der)?,
    })
}

pub(crate) fn x509_time(unix: i64) -> Result<Time, SimError> {
    let d = Duration::from_secs(unix.max(0) as u64);
    // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    if unix < 2_524_608_000 {
        UtcTime::from_unix_duration(d).map(Time::UtcTime)
    } else {
        GeneralizedTime::from_unix_duration(d).map(Time::GeneralTime)
    }
    .map_err(|e| SimError::Crypto(format!("time {unix}: {e}")))
}

fn serial() -> Result<SerialNumber, SimError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| SimError::Crypto(e.to_string()))?;
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::new(&b).map_err(|e| SimError::Crypto(e.to_string()))
}

fn build(
    issuer_key: &RsaPrivateKey,
    issuer: Name,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    (not_before, not_after): (i64, i64),
    extensions: Vec<Extension>,
) -> Result<Certificate, SimError> {
    let alg = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(SHA256_WITH_RSA),
        parameters: Some(Any::null()),
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial()?,
        signature: alg.clone(),
        issuer,
        validity: Validity {
            not_before: x509_time(not_before)?,
            not_after: x509_time(not_after)?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs
        .to_der()
        .map_err(|e| SimError::Crypto(format!("certificate: {e}")))?;
    let sig = SigningKey::<Sha256>::new(issuer_key.clone())
        .sign(&tbs_der)
        .to_vec();
    let cert = x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&sig).map_err(|e| SimError::Crypto(e.to_string()))?,
    };
    let der = cert
        .to_der()
        .map_err(|e| SimError::Crypto(format!("certificate: {e}")))?;
    Certificate::from_der(&der).map_err(|e| SimError::Crypto(e.to_string()))
}
