//! The simulator's test PKI, made fresh with rcgen:
//!
//! - a server CA and the server certificate (`localhost`, `127.0.0.1`, `::1`,
//!   `api.push.apple.com`, `api.sandbox.push.apple.com`): clients trust the CA;
//! - a test "Apple push CA" and, issued by it, push identities like Apple's MDM push
//!   certificate: RSA-2048, subject `UID=com.apple.mgmt.External.<uuid>, CN=APSP:<uuid>,
//!   C=US`, extended key usage clientAuth. The server accepts only these;
//! - an "untrusted" identity of the same shape from another CA, for negative tests.
//!
//! RSA key generation is slow in tests, so [`Pki::shared`] makes one set per process.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
};

/// OID of the subject `UID` attribute (0.9.2342.19200300.100.1.1): the push topic.
pub const UID_OID: [u64; 7] = [0, 9, 2342, 19_200_300, 100, 1, 1];

/// Host names and addresses the server certificate is valid for.
pub const SERVER_NAMES: [&str; 5] = [
    "localhost",
    "127.0.0.1",
    "::1",
    "api.push.apple.com",
    "api.sandbox.push.apple.com",
];

/// A certificate and its private key, both PEM (key in PKCS#8).
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
    /// DER of the certificate, to recognise it on a connection.
    pub cert_der: Vec<u8>,
    /// The push topic in the subject UID.
    pub topic: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Everything the simulator and its clients need.
#[derive(Clone, Debug)]
pub struct Pki {
    pub server_ca_pem: String,
    pub server: Identity,
    /// The test "Apple push CA" that issues trusted push identities.
    pub push_ca_pem: String,
    push_ca: Ca,
    /// A push identity the server accepts.
    pub client: Identity,
    /// Same shape, from a CA the server does not trust.
    pub untrusted_client: Identity,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn random_uuid() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn ca_params(name: &str) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mdm-apnssim");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A CA: its certificate, key, and the name its parameters are rebuilt from.
#[derive(Clone)]
struct Ca {
    name: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn ca(name: &str) -> Result<Ca, String> {
    let key = KeyPair::generate().map_err(err)?;
    let cert = ca_params(name)?.self_signed(&key).map_err(err)?;
    Ok(Ca {
        name: name.to_owned(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issuer(ca: &Ca) -> Result<Issuer<'static, KeyPair>, String> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(err)?;
    Ok(Issuer::new(ca_params(&ca.name)?, key))
}

fn server_identity(ca: &Ca) -> Result<Identity, String> {
    let key = KeyPair::generate().map_err(err)?;
    let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "api.push.apple.com (mdm-apnssim)");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer(ca)?).map_err(err)?;
    Ok(Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        topic: String::new(),
    })
}

/// An RSA-2048 key in PKCS#8 PEM.
fn rsa_key_pem() -> Result<String, String> {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(err)?;
    Ok(key.to_pkcs8_pem(LineEnding::LF).map_err(err)?.to_string())
}

/// A push identity for `topic`, issued by `ca`.
fn push_identity(ca: &Ca, topic: &str) -> Result<Identity, String> {
    let key_pem = rsa_key_pem()?;
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &PKCS_RSA_SHA256).map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let uuid = topic.rsplit('.').next().unwrap_or(topic);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CustomDnType(UID_OID.to_vec()), topic);
    dn.push(DnType::CommonName, format!("APSP:{uuid}"));
    dn.push(DnType::CountryName, "US");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer(ca)?).map_err(err)?;
    Ok(Identity {
        cert_pem: cert.pem(),
        key_pem,
        cert_der: cert.der().to_vec(),
        topic: topic.to_owned(),
    })
}

impl Pki {
    /// A fresh PKI with one trusted and one untrusted push identity.
    pub fn generate() -> Result<Pki, String> {
        let server_ca = ca("mdm-apnssim server CA")?;
        let server = server_identity(&server_ca)?;
        let push_ca = ca("Test Apple push CA (mdm-apnssim)")?;
        let topic = format!("com.apple.mgmt.External.{}", random_uuid());
        let client = push_identity(&push_ca, &topic)?;
        let other_ca = ca("Untrusted push CA (mdm-apnssim)")?;
        let untrusted_client = push_identity(&other_ca, &topic)?;
        Ok(Pki {
            server_ca_pem: server_ca.cert_pem.clone(),
            server,
            push_ca_pem: push_ca.cert_pem.clone(),
            push_ca,
            client,
            untrusted_client,
        })
    }

    /// One PKI per process (RSA key generation is slow).
    pub fn shared() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| Pki::generate().expect("test PKI"))
    }

    /// Another trusted push identity, e.g. for a different topic.
    pub fn issue_push_identity(&self, topic: &str) -> Result<Identity, String> {
        push_identity(&self.push_ca, topic)
    }
}
