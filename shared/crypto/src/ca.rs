//! The SCEP certificate authority: a self-signed CA that issues the devices' MDM identity
//! certificates, and an RA (registration authority) certificate it issued, whose key
//! decrypts requests and signs replies. The split keeps the CA key away from attacker
//! input: it only ever signs certificates for CSRs that already verified.

use std::fmt;

use der::asn1::{BitString, OctetString};
use der::{Any, Encode};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::time::Validity;

use crate::cert::{self, Certificate};
use crate::csr::Csr;
use crate::digest::DigestAlgorithm;
use crate::error::CryptoError;
use crate::key::KeyPair;
use crate::oid;
use crate::sign;

/// CA key size by default. RSA-2048 (not micromdm's 4096): every certificate the CA
/// signs costs a private-key operation, roughly 7x slower at 4096 bits, and that runs in
/// WebAssembly; 2048 bits is still the size Apple and the CA/Browser Forum require.
pub const DEFAULT_CA_KEY_BITS: usize = 2048;
/// NotBefore is backdated this much: device clocks run a little behind.
const BACKDATE_SECS: i64 = 10 * 60;
const DAY: i64 = 86_400;

/// Parameters of [`CertificateAuthority::generate_with`].
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// CA and RA key size: 2048, 3072 or 4096.
    pub key_bits: usize,
    /// Lifetime of the CA and RA certificates.
    pub validity_days: u32,
    /// Optional `O=` in both subjects.
    pub organization: Option<String>,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            key_bits: DEFAULT_CA_KEY_BITS,
            validity_days: 3650,
            organization: None,
        }
    }
}

/// Parameters of [`CertificateAuthority::issue`].
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Lifetime in days (capped at the CA certificate's end).
    pub validity_days: u32,
    /// Copy the subjectAltName the CSR asks for. Off by default: the names are chosen by
    /// the requester, and a certificate from a CA the devices trust must not vouch for
    /// names nobody checked.
    pub copy_subject_alt_name: bool,
    /// keyUsage keyEncipherment besides digitalSignature (profiles ask for `Key Usage` 5).
    pub key_encipherment: bool,
    /// The subject the CA gives the certificate (`O=<organization>, CN=<common name>`);
    /// `None` copies the request's subject. A CA whose certificates devices trust decides
    /// who a certificate names: set it.
    pub subject: Option<(String, Option<String>)>,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            validity_days: 365,
            copy_subject_alt_name: false,
            key_encipherment: true,
            subject: None,
        }
    }
}

/// CA and RA keys with their certificates. `Debug` shows subjects only.
#[derive(Clone)]
pub struct CertificateAuthority {
    ca_key: KeyPair,
    ca_cert: Certificate,
    ra_key: KeyPair,
    ra_cert: Certificate,
}

impl CertificateAuthority {
    /// A new CA `CN=<common_name>` and RA `CN=<common_name> RA`, RSA-2048, valid for ten
    /// years from `now_unix` (backdated ten minutes).
    pub fn generate(common_name: &str, now_unix: i64) -> Result<Self, CryptoError> {
        Self::generate_with(common_name, now_unix, &CaOptions::default())
    }

    pub fn generate_with(
        common_name: &str,
        now_unix: i64,
        opts: &CaOptions,
    ) -> Result<Self, CryptoError> {
        if opts.validity_days == 0 {
            return Err(CryptoError::InvalidInput("CA validity of 0 days".into()));
        }
        // The RA is named after the CA; both must fit X.520's 64 characters.
        if common_name.trim().chars().count() > 61 {
            return Err(CryptoError::InvalidInput(
                "CA common name is longer than 61 characters (the RA's name adds \" RA\")".into(),
            ));
        }
        let ra_cn = format!("{} RA", common_name.trim());
        let ca_name = cert::name_with(common_name, opts.organization.as_deref())?;
        let ra_name = cert::name_with(&ra_cn, opts.organization.as_deref())?;
        let validity = (
            now_unix - BACKDATE_SECS,
            now_unix + i64::from(opts.validity_days) * DAY,
        );

        let ca_key = KeyPair::generate_with_bits(opts.key_bits)?;
        let ca_spki = spki_of(&ca_key)?;
        let ca_ski = key_identifier(&ca_spki);
        let ca_exts = vec![
            ext(
                oid::BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
            )?,
            ext(
                oid::KEY_USAGE,
                true,
                &KeyUsage(
                    KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
                ),
            )?,
            ext(
                oid::SUBJECT_KEY_ID,
                false,
                &SubjectKeyIdentifier(octets(&ca_ski)?),
            )?,
        ];
        let ca_cert = build(
            &ca_key,
            ca_name.clone(),
            ca_name.clone(),
            ca_spki,
            validity,
            ca_exts,
        )?;

        let ra_key = KeyPair::generate_with_bits(opts.key_bits)?;
        let ra_spki = spki_of(&ra_key)?;
        let ra_exts = vec![
            not_a_ca()?,
            // Devices encrypt their requests to the certificate with keyEncipherment; the
            // RA key decrypts and never signs (CertReps are signed by the CA).
            ext(
                oid::KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::KeyEncipherment.into()),
            )?,
            ext(
                oid::SUBJECT_KEY_ID,
                false,
                &SubjectKeyIdentifier(octets(&key_identifier(&ra_spki))?),
            )?,
            aki(&ca_ski)?,
        ];
        let ra_cert = build(&ca_key, ca_name, ra_name, ra_spki, validity, ra_exts)?;
        Ok(CertificateAuthority {
            ca_key,
            ca_cert,
            ra_key,
            ra_cert,
        })
    }

    /// Reassembles a stored CA, checking that each key belongs to its certificate, that
    /// the CA certificate is a CA, and that the CA issued the RA certificate.
    pub fn from_parts(
        ca_key: KeyPair,
        ca_cert: Certificate,
        ra_key: KeyPair,
        ra_cert: Certificate,
    ) -> Result<Self, CryptoError> {
        if !ca_cert.matches_key(&ca_key) {
            return Err(CryptoError::InvalidInput(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        if !ra_cert.matches_key(&ra_key) {
            return Err(CryptoError::InvalidInput(
                "the RA key does not belong to the RA certificate".into(),
            ));
        }
        if !ca_cert.is_ca() {
            return Err(CryptoError::InvalidCertificate(
                "the CA certificate lacks basicConstraints CA:true".into(),
            ));
        }
        ra_cert.verify_issued_by(&ca_cert).map_err(|e| {
            CryptoError::InvalidCertificate(format!("RA certificate not issued by the CA: {e}"))
        })?;
        Ok(CertificateAuthority {
            ca_key,
            ca_cert,
            ra_key,
            ra_cert,
        })
    }

    /// [`Self::from_parts`] from PKCS#8 DER keys and DER certificates, as stored.
    pub fn from_der(
        ca_key_pkcs8: &[u8],
        ca_cert: &[u8],
        ra_key_pkcs8: &[u8],
        ra_cert: &[u8],
    ) -> Result<Self, CryptoError> {
        Self::from_parts(
            KeyPair::from_pkcs8_der(ca_key_pkcs8)?,
            Certificate::from_der(ca_cert)?,
            KeyPair::from_pkcs8_der(ra_key_pkcs8)?,
            Certificate::from_der(ra_cert)?,
        )
    }

    /// Seal these with `to_pkcs8_der` before storing them.
    pub fn ca_key(&self) -> &KeyPair {
        &self.ca_key
    }

    pub fn ca_certificate(&self) -> &Certificate {
        &self.ca_cert
    }

    /// The key that decrypts SCEP requests and signs CertReps.
    pub fn ra_key(&self) -> &KeyPair {
        &self.ra_key
    }

    pub fn ra_certificate(&self) -> &Certificate {
        &self.ra_cert
    }

    /// GetCACert with CA and RA: DER certificates-only SignedData
    /// (`application/x-x509-ca-ra-cert`).
    pub fn ca_ra_certs_only(&self) -> Result<Vec<u8>, CryptoError> {
        sign::certs_only(&[self.ca_cert.clone(), self.ra_cert.clone()])
    }

    /// Whether the CA signed `cert` (e.g. the signer of a RenewalReq). Dates unchecked.
    pub fn verify_issued(&self, cert: &Certificate) -> Result<(), CryptoError> {
        cert.verify_issued_by(&self.ca_cert)
    }

    /// Issues an end-entity certificate for a verified CSR: the CSR's subject (and its
    /// subjectAltName when asked), keyUsage digitalSignature (+keyEncipherment), EKU
    /// clientAuth, CA:false, SKI/AKI, random 128-bit serial, NotBefore `now − 10 min`,
    /// NotAfter `now + validity_days` (never beyond the CA certificate), SHA-256 with RSA.
    /// Policy (challenge, who may get what) is the caller's, before calling this.
    pub fn issue(
        &self,
        csr: &Csr,
        now_unix: i64,
        opts: &IssueOptions,
    ) -> Result<Certificate, CryptoError> {
        if opts.validity_days == 0 {
            return Err(CryptoError::InvalidInput("validity of 0 days".into()));
        }
        let not_after =
            (now_unix + i64::from(opts.validity_days) * DAY).min(self.ca_cert.not_after_unix());
        let not_before = now_unix - BACKDATE_SECS;
        if not_after <= not_before {
            return Err(CryptoError::InvalidInput(
                "the CA certificate has expired: nothing can be issued".into(),
            ));
        }
        let san = if opts.copy_subject_alt_name {
            csr.extension(oid::SUBJECT_ALT_NAME)
        } else {
            None
        };
        let subject = match &opts.subject {
            Some((cn, org)) => crate::cert::name_with(cn, org.as_deref())?,
            None => csr.subject_name().clone(),
        };
        if subject.0.is_empty() && san.is_none() {
            return Err(CryptoError::InvalidInput(
                "the CSR has an empty subject and no subjectAltName to use instead".into(),
            ));
        }
        let spki = csr.spki().clone();
        let mut usage = KeyUsages::DigitalSignature.into();
        if opts.key_encipherment {
            usage |= KeyUsages::KeyEncipherment;
        }
        let mut exts = vec![
            not_a_ca()?,
            ext(oid::KEY_USAGE, true, &KeyUsage(usage))?,
            ext(
                oid::EXT_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![oid::KP_CLIENT_AUTH]),
            )?,
            ext(
                oid::SUBJECT_KEY_ID,
                false,
                &SubjectKeyIdentifier(octets(&key_identifier(&spki))?),
            )?,
            aki(&self.ca_key_id()?)?,
        ];
        if let Some(san) = san {
            exts.push(Extension {
                extn_id: oid::SUBJECT_ALT_NAME,
                // RFC 5280 §4.2.1.6: critical when the subject is empty.
                critical: subject.0.is_empty(),
                extn_value: san.extn_value.clone(),
            });
        }
        build(
            &self.ca_key,
            self.ca_cert.x509().tbs_certificate.subject.clone(),
            subject,
            spki,
            (not_before, not_after),
            exts,
        )
    }

    fn ca_key_id(&self) -> Result<Vec<u8>, CryptoError> {
        match self.ca_cert.subject_key_id() {
            Some(id) => Ok(id),
            None => Ok(key_identifier(
                &self.ca_cert.x509().tbs_certificate.subject_public_key_info,
            )),
        }
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("ca", &self.ca_cert.subject())
            .field("ra", &self.ra_cert.subject())
            .finish_non_exhaustive()
    }
}

fn spki_of(key: &KeyPair) -> Result<SubjectPublicKeyInfoOwned, CryptoError> {
    use der::Decode;
    SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
        .map_err(|e| CryptoError::Failed(format!("SPKI: {e}")))
}

/// RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    DigestAlgorithm::Sha1.digest(spki.subject_public_key.raw_bytes())
}

fn octets(b: &[u8]) -> Result<OctetString, CryptoError> {
    OctetString::new(b).map_err(|e| CryptoError::Failed(format!("key identifier: {e}")))
}

fn aki(issuer_key_id: &[u8]) -> Result<Extension, CryptoError> {
    ext(
        oid::AUTHORITY_KEY_ID,
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(octets(issuer_key_id)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

/// The critical basicConstraints of an end-entity certificate (the RA's, a device's).
fn not_a_ca() -> Result<Extension, CryptoError> {
    ext(
        oid::BASIC_CONSTRAINTS,
        true,
        &BasicConstraints {
            ca: false,
            path_len_constraint: None,
        },
    )
}

fn ext(
    id: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CryptoError> {
    let der = value
        .to_der()
        .map_err(|e| CryptoError::Failed(format!("extension {id}: {e}")))?;
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: OctetString::new(der)
            .map_err(|e| CryptoError::Failed(format!("extension {id}: {e}")))?,
    })
}

/// A v3 certificate signed by `issuer_key` with SHA-256 and RSA.
fn build(
    issuer_key: &KeyPair,
    issuer: Name,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    (not_before, not_after): (i64, i64),
    extensions: Vec<Extension>,
) -> Result<Certificate, CryptoError> {
    let fail = |what: &str, e: &dyn fmt::Display| CryptoError::Failed(format!("{what}: {e}"));
    let alg = AlgorithmIdentifierOwned {
        oid: DigestAlgorithm::Sha256.rsa_signature_oid(),
        parameters: Some(Any::null()),
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: cert::random_serial()?,
        signature: alg.clone(),
        issuer,
        validity: Validity {
            not_before: cert::x509_time(not_before, "not_before")?,
            not_after: cert::x509_time(not_after, "not_after")?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(|e| fail("certificate", &e))?;
    let signature = issuer_key.sign(DigestAlgorithm::Sha256, &tbs_der)?;
    Certificate::from_x509(x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&signature).map_err(|e| fail("signature", &e))?,
    })
}
