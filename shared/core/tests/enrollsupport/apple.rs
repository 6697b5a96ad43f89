//! The fake Apple side of enrollment: an expired Apple device CA, device identities
//! (RSA-1024, `CN=<UUID>`), and MachineInfo plists signed as devices sign them (attached
//! CMS, SHA-1 or SHA-256, DER or Apple's BER with indefinite lengths).

use std::str::FromStr;
use std::time::Duration;

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Encode};
use mdm_crypto::Certificate;
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Digest as _;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use super::START;

/// rand_core 0.6 over the platform's randomness, for RSA key generation.
pub struct Rng;

impl rsa::rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng {}

fn utc(unix: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(unix)).unwrap())
}

fn spki(key: &RsaPrivateKey) -> SubjectPublicKeyInfoOwned {
    let der = key.to_public_key().to_public_key_der().unwrap();
    SubjectPublicKeyInfoOwned::try_from(der.as_bytes()).unwrap()
}

fn serial() -> SerialNumber {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    b[0] = (b[0] & 0x7f) | 0x10;
    SerialNumber::new(&b).unwrap()
}

/// A fake "Apple iPhone Device CA": RSA-1024, SHA-1, valid 2007-2014 (expired, as
/// Apple's is).
pub struct FakeCa {
    pub key: RsaPrivateKey,
    pub cert: x509_cert::Certificate,
    pub der: Vec<u8>,
}

impl FakeCa {
    pub fn new(cn: &str) -> Self {
        let key = RsaPrivateKey::new(&mut Rng, 1024).unwrap();
        let name = Name::from_str(&format!("CN={cn},OU=Apple iPhone,O=Apple Inc.,C=US")).unwrap();
        let validity = Validity {
            not_before: utc(1_176_764_086), // 2007-04-16
            not_after: utc(1_397_688_886),  // 2014-04-16
        };
        let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key.clone());
        let cert =
            CertificateBuilder::new(Profile::Root, serial(), validity, name, spki(&key), &signer)
                .unwrap()
                .build::<rsa::pkcs1v15::Signature>()
                .unwrap();
        let der = cert.to_der().unwrap();
        FakeCa { key, cert, der }
    }

    pub fn pem(&self) -> String {
        Certificate::from_der(&self.der).unwrap().to_pem()
    }

    /// A device identity as Apple issues them: RSA-1024, `CN=<uuid>`, signed with
    /// `sha256` (newer devices) or SHA-1 (older ones), valid now.
    pub fn device(&self, cn: &str, sha256: bool) -> DeviceKey {
        let key = RsaPrivateKey::new(&mut Rng, 1024).unwrap();
        let validity = Validity {
            not_before: utc(START - 86_400),
            not_after: utc(START + 3 * 365 * 86_400),
        };
        let profile = Profile::Leaf {
            issuer: self.cert.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        };
        let subject = Name::from_str(&format!("CN={cn}")).unwrap();
        let cert = if sha256 {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone());
            CertificateBuilder::new(profile, serial(), validity, subject, spki(&key), &signer)
                .unwrap()
                .build::<rsa::pkcs1v15::Signature>()
                .unwrap()
        } else {
            let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone());
            CertificateBuilder::new(profile, serial(), validity, subject, spki(&key), &signer)
                .unwrap()
                .build::<rsa::pkcs1v15::Signature>()
                .unwrap()
        };
        let der = cert.to_der().unwrap();
        DeviceKey { key, cert, der }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Der,
    /// As Apple devices (and `openssl cms -stream`) send it: indefinite lengths, the
    /// content as a constructed OCTET STRING in chunks.
    Ber,
}

pub struct DeviceKey {
    pub key: RsaPrivateKey,
    pub cert: x509_cert::Certificate,
    pub der: Vec<u8>,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn indefinite(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";

fn oid_der(s: &str) -> Vec<u8> {
    ObjectIdentifier::new_unwrap(s).to_der().unwrap()
}

impl DeviceKey {
    /// Attached CMS SignedData over `content`, as a device signs its MachineInfo.
    /// `extra_certs` (DER) go next to the device certificate (e.g. the device CA).
    pub fn sign(&self, content: &[u8], hash: Hash, form: Form, extra_certs: &[&[u8]]) -> Vec<u8> {
        let oid = ObjectIdentifier::new_unwrap;
        let (digest_oid, digest) = match hash {
            Hash::Sha1 => ("1.3.14.3.2.26", sha1::Sha1::digest(content).to_vec()),
            Hash::Sha256 => (
                "2.16.840.1.101.3.4.2.1",
                sha2::Sha256::digest(content).to_vec(),
            ),
        };
        let alg = AlgorithmIdentifierOwned {
            oid: oid(digest_oid),
            parameters: None,
        };
        let attr = |o: &str, v: Any| x509_cert::attr::Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).unwrap(),
        };
        let attrs = SetOfVec::try_from(vec![
            attr(
                "1.2.840.113549.1.9.3",
                Any::encode_from(&oid(ID_DATA)).unwrap(),
            ),
            attr(
                "1.2.840.113549.1.9.4",
                Any::encode_from(&OctetString::new(digest).unwrap()).unwrap(),
            ),
        ])
        .unwrap();
        let signed = attrs.to_der().unwrap();
        let sig = match hash {
            Hash::Sha1 => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(&signed)
                .to_vec(),
            Hash::Sha256 => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
                .sign(&signed)
                .to_vec(),
        };
        let si = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: self.cert.tbs_certificate.issuer.clone(),
                serial_number: self.cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: alg.clone(),
            signed_attrs: Some(attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: oid("1.2.840.113549.1.1.1"),
                parameters: Some(Any::null()),
            },
            signature: OctetString::new(sig).unwrap(),
            unsigned_attrs: None,
        }
        .to_der()
        .unwrap();
        let digest_algs = tlv(0x31, &alg.to_der().unwrap());
        let mut certs = self.der.clone();
        for c in extra_certs {
            certs.extend_from_slice(c);
        }
        let signer_infos = tlv(0x31, &si);
        match form {
            Form::Der => {
                let eci = tlv(
                    0x30,
                    &[oid_der(ID_DATA), tlv(0xa0, &tlv(0x04, content))].concat(),
                );
                let sd = tlv(
                    0x30,
                    &[
                        vec![0x02, 0x01, 0x01],
                        digest_algs,
                        eci,
                        tlv(0xa0, &certs),
                        signer_infos,
                    ]
                    .concat(),
                );
                tlv(0x30, &[oid_der(ID_SIGNED_DATA), tlv(0xa0, &sd)].concat())
            }
            Form::Ber => {
                let chunks: Vec<Vec<u8>> = content.chunks(1000).map(|c| tlv(0x04, c)).collect();
                let chunk_refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
                let octets = indefinite(0x24, &chunk_refs);
                let explicit = indefinite(0xa0, &[&octets]);
                let eci = indefinite(0x30, &[&oid_der(ID_DATA), &explicit]);
                let cert_set = indefinite(0xa0, &[&certs]);
                let sd = indefinite(
                    0x30,
                    &[
                        &[0x02, 0x01, 0x01],
                        &digest_algs,
                        &eci,
                        &cert_set,
                        &signer_infos,
                    ],
                );
                let wrapped = indefinite(0xa0, &[&sd]);
                indefinite(0x30, &[&oid_der(ID_SIGNED_DATA), &wrapped])
            }
        }
    }
}

/// A MachineInfo plist as a device sends it.
pub fn machine_info(udid: &str, serial: &str, os: Option<&str>, can_update: bool) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("UDID".into(), udid.into());
    d.insert("SERIAL".into(), serial.into());
    d.insert("PRODUCT".into(), "iPhone14,5".into());
    d.insert("VERSION".into(), "21C66".into());
    if let Some(os) = os {
        d.insert("OS_VERSION".into(), os.into());
    }
    d.insert("LANGUAGE".into(), "en-US".into());
    d.insert("IMEI".into(), "35 123456 789012 3".into());
    if can_update {
        d.insert("MDM_CAN_REQUEST_SOFTWARE_UPDATE".into(), true.into());
    }
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &plist::Value::Dictionary(d)).unwrap();
    out
}
