//! SCEP messages (RFC 8894): reading a device's PKCSReq / RenewalReq / CertPoll, answering
//! with a CertRep, and — for the device simulator and the tests — the client side.
//!
//! Server flow: [`parse_pki_message`] (BER tolerant, signature verified with the signer
//! certificate the message carries) → caller decides whether to trust that signer
//! (self-signed for PKCSReq, issued by our CA for RenewalReq) → [`PkiMessage::decrypt_csr`]
//! with the RA key → challenge and policy checks → [`crate::CertificateAuthority::issue`]
//! → [`cert_rep_success`] (or [`cert_rep_failure`] / [`cert_rep_pending`]).

use cms::enveloped_data::EnvelopedData;
use der::Any;
use der::asn1::OctetString;

use crate::cert::Certificate;
use crate::csr::Csr;
use crate::digest::DigestAlgorithm;
use crate::envelope::{self, EnvelopeCipher, OpenError};
use crate::error::CryptoError;
use crate::key::KeyPair;
pub use crate::scep_status::{FailInfo, MessageType, PkiStatus, ScepError};
use crate::sign::{self, SignOptions, SignedAttribute};
use crate::verify::{SignedMessage, verify_signed_data};
use crate::{oid, rng, tlv};

/// Longest transactionID accepted (they are hashes in practice, 40-64 characters).
const MAX_TRANSACTION_ID: usize = 256;
/// Nonce sizes accepted: RFC 8894 says 16 bytes, micromdm's client sends 8.
const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=64;
const NONCE_BYTES: usize = 16;

fn open_error(e: OpenError) -> ScepError {
    match e {
        OpenError::Unsupported(what) => ScepError::UnsupportedAlgorithm(format!("envelope {what}")),
        OpenError::Corrupt(d) => ScepError::Malformed(format!("envelope: {d}")),
        OpenError::Failed => ScepError::DecryptFailed,
    }
}

/// A verified SCEP request.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    message_type: MessageType,
    transaction_id: String,
    /// The attribute value as sent, copied verbatim into the reply.
    transaction_id_value: Any,
    sender_nonce: Vec<u8>,
    signed: SignedMessage,
    envelope: EnvelopedData,
}

/// Parses and verifies a SCEP request (PKCSReq, RenewalReq or CertPoll), DER or BER: the
/// SignedData signature (RSA PKCS#1 v1.5, SHA-1/256/384/512) with the signer certificate
/// embedded in the message, messageDigest, the SCEP attributes, and the envelope's
/// structure. Other message types are [`ScepError::UnsupportedMessageType`].
pub fn parse_pki_message(input: &[u8]) -> Result<PkiMessage, ScepError> {
    let signed = verify_signed_data(input, None)?;
    let code = string_attr(&signed, oid::SCEP_MESSAGE_TYPE, "messageType")?
        .ok_or(ScepError::MissingAttribute("messageType"))?
        .0;
    let message_type = match MessageType::from_code(code.trim()) {
        Some(t @ (MessageType::PkcsReq | MessageType::RenewalReq | MessageType::CertPoll)) => t,
        Some(other) => {
            return Err(ScepError::UnsupportedMessageType(format!(
                "{} ({other:?})",
                other.code()
            )));
        }
        None => return Err(ScepError::UnsupportedMessageType(printable_excerpt(&code))),
    };
    let (transaction_id, transaction_id_value) =
        string_attr(&signed, oid::SCEP_TRANSACTION_ID, "transactionID")?
            .ok_or(ScepError::MissingAttribute("transactionID"))?;
    if transaction_id.is_empty() || transaction_id.len() > MAX_TRANSACTION_ID {
        return Err(ScepError::InvalidAttribute(
            "transactionID",
            format!("must be 1 to {MAX_TRANSACTION_ID} characters"),
        ));
    }
    let sender_nonce = nonce_attr(&signed, oid::SCEP_SENDER_NONCE, "senderNonce")?
        .ok_or(ScepError::MissingAttribute("senderNonce"))?;
    let envelope = pki_envelope(&signed, "the request has no pkcsPKIEnvelope")?;
    Ok(PkiMessage {
        message_type,
        transaction_id,
        transaction_id_value,
        sender_nonce,
        signed,
        envelope,
    })
}

impl PkiMessage {
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    pub fn transaction_id(&self) -> &str {
        &self.transaction_id
    }

    pub fn sender_nonce(&self) -> &[u8] {
        &self.sender_nonce
    }

    /// The certificate that signed the request. For PKCSReq expect it self-signed over
    /// the CSR's key ([`Self::signer_is_self_signed`]); for RenewalReq check that our CA
    /// issued it ([`crate::CertificateAuthority::verify_issued`]) and it is still valid.
    pub fn signer_certificate(&self) -> &Certificate {
        self.signed.signer()
    }

    /// Whether the signer certificate verifies with its own key.
    pub fn signer_is_self_signed(&self) -> bool {
        let s = self.signed.signer();
        s.verify_issued_by(s).is_ok()
    }

    /// All certificates in the request.
    pub fn certificates(&self) -> &[Certificate] {
        self.signed.certificates()
    }

    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.signed.digest_algorithm()
    }

    /// signingTime, when the client sent one.
    pub fn signing_time_unix(&self) -> Option<i64> {
        self.signed.signing_time_unix()
    }

    /// The envelope's content cipher, `None` when it is one we do not implement.
    pub fn envelope_cipher(&self) -> Option<EnvelopeCipher> {
        EnvelopeCipher::from_oid(&self.envelope.encrypted_content.content_enc_alg.oid)
    }

    /// Decrypts the pkcsPKIEnvelope of a PKCSReq or RenewalReq with the RA key and
    /// verifies the CSR inside (self-signature, RSA 1024-4096). Only ever pass the RA
    /// key: the CA key should never touch attacker-supplied ciphertext.
    pub fn decrypt_csr(&self, ra_key: &KeyPair) -> Result<Csr, ScepError> {
        if !matches!(
            self.message_type,
            MessageType::PkcsReq | MessageType::RenewalReq
        ) {
            return Err(ScepError::UnexpectedMessageType(self.message_type));
        }
        // "Looks like one DER SEQUENCE" is part of the constant success test; the full CSR
        // checks come after, once the decryption is known to be good.
        let der = envelope::open(&self.envelope, ra_key, true, |pt| {
            tlv::read_exact(pt)
                .ok()
                .filter(|t| t.tag == 0x30)
                .map(|_| pt.to_vec())
        })
        .map_err(open_error)?;
        Csr::from_der(&der)
    }

    /// The decrypted envelope content as is (for CertPoll: the IssuerAndSubject).
    pub fn decrypt_content(&self, ra_key: &KeyPair) -> Result<Vec<u8>, ScepError> {
        envelope::open(&self.envelope, ra_key, true, |pt| Some(pt.to_vec())).map_err(open_error)
    }
}

/// The content cipher of our CertRep for a request that used `request`: AES and 3DES
/// are mirrored (the client just proved it handles them). A single-DES request gets
/// 3DES: single DES must not be produced, every SCEP client implements 3DES (RFC 8894's
/// `DES3`, the historical baseline), and micromdm's scepclient — the one DES sender
/// known — decrypts it. Anything else gets AES-128-CBC, RFC 8894's mandatory cipher.
pub fn reply_cipher(request: Option<EnvelopeCipher>) -> EnvelopeCipher {
    match request {
        Some(
            c @ (EnvelopeCipher::Aes128Cbc | EnvelopeCipher::Aes192Cbc | EnvelopeCipher::Aes256Cbc),
        ) => c,
        Some(EnvelopeCipher::DesEde3Cbc | EnvelopeCipher::DesCbc) => EnvelopeCipher::DesEde3Cbc,
        None => EnvelopeCipher::Aes128Cbc,
    }
}

/// CertRep SUCCESS (DER): an EnvelopedData encrypted to the requester's signer
/// certificate (cipher per [`reply_cipher`]) holding a certificates-only SignedData with
/// `issued`; signed with SHA-256 by `signer_key` (the CA's: the RA key only decrypts,
/// so that a decryption oracle on it could not forge replies), `signer_cert` and
/// `other_cert` (the RA's) included;
/// messageType 3, pkiStatus 0, transactionID copied, recipientNonce = the request's
/// senderNonce, fresh senderNonce.
pub fn cert_rep_success(
    req: &PkiMessage,
    issued: &Certificate,
    signer_key: &KeyPair,
    signer_cert: &Certificate,
    other_cert: &Certificate,
) -> Result<Vec<u8>, CryptoError> {
    let degenerate = sign::certs_only(std::slice::from_ref(issued))?;
    let env = envelope::seal(
        &degenerate,
        req.signer_certificate(),
        reply_cipher(req.envelope_cipher()),
    )?;
    cert_rep(
        req,
        PkiStatus::Success,
        None,
        &env,
        signer_key,
        signer_cert,
        other_cert,
    )
}

/// CertRep FAILURE (DER) with `fail_info`; no envelope.
pub fn cert_rep_failure(
    req: &PkiMessage,
    fail_info: FailInfo,
    signer_key: &KeyPair,
    signer_cert: &Certificate,
    other_cert: &Certificate,
) -> Result<Vec<u8>, CryptoError> {
    cert_rep(
        req,
        PkiStatus::Failure,
        Some(fail_info),
        &[],
        signer_key,
        signer_cert,
        other_cert,
    )
}

/// CertRep PENDING (DER): the client polls again with CertPoll and the same
/// transactionID.
pub fn cert_rep_pending(
    req: &PkiMessage,
    signer_key: &KeyPair,
    signer_cert: &Certificate,
    other_cert: &Certificate,
) -> Result<Vec<u8>, CryptoError> {
    cert_rep(
        req,
        PkiStatus::Pending,
        None,
        &[],
        signer_key,
        signer_cert,
        other_cert,
    )
}

fn cert_rep(
    req: &PkiMessage,
    status: PkiStatus,
    fail_info: Option<FailInfo>,
    content: &[u8],
    signer_key: &KeyPair,
    signer_cert: &Certificate,
    other_cert: &Certificate,
) -> Result<Vec<u8>, CryptoError> {
    let mut extra = vec![
        SignedAttribute::printable(oid::SCEP_MESSAGE_TYPE, MessageType::CertRep.code())?,
        SignedAttribute::printable(oid::SCEP_PKI_STATUS, status.code())?,
        SignedAttribute::raw(oid::SCEP_TRANSACTION_ID, req.transaction_id_value.clone()),
        SignedAttribute::octets(oid::SCEP_RECIPIENT_NONCE, &req.sender_nonce)?,
        SignedAttribute::octets(oid::SCEP_SENDER_NONCE, &rng::bytes(NONCE_BYTES))?,
    ];
    if let Some(fi) = fail_info {
        extra.push(SignedAttribute::printable(oid::SCEP_FAIL_INFO, fi.code())?);
    }
    // FAILURE and PENDING carry an empty eContent (digest of nothing), as micromdm and
    // Go's pkcs7 write them, which is what Apple devices have been answered with.
    let opts = SignOptions {
        digest: DigestAlgorithm::Sha256,
        detached: false,
        signing_time_unix: None,
        extra_attributes: extra,
    };
    sign::sign_data(
        content,
        signer_key,
        signer_cert,
        std::slice::from_ref(other_cert),
        &opts,
    )
}

/// A CertRep as a client reads it.
#[derive(Debug, Clone)]
pub struct CertRep {
    pub status: PkiStatus,
    /// Present on FAILURE when the server said why.
    pub fail_info: Option<FailInfo>,
    /// failInfoText (RFC 8894), when present.
    pub fail_info_text: Option<String>,
    pub transaction_id: String,
    /// Must equal the request's senderNonce (the caller compares).
    pub recipient_nonce: Vec<u8>,
    pub sender_nonce: Option<Vec<u8>>,
    /// SUCCESS: the issued certificate (the first end-entity one in the reply).
    pub certificate: Option<Certificate>,
    /// SUCCESS: every certificate in the encrypted reply.
    pub issued_certificates: Vec<Certificate>,
    /// Who signed the reply; the caller checks it is the RA/CA it expects.
    pub signer: Certificate,
}

/// Parses a CertRep, verifying its signature (with the signer certificate it carries:
/// compare [`CertRep::signer`] with the RA certificate from GetCACert) and, on SUCCESS,
/// decrypting the certificate with `requester_key` (the key of the certificate that
/// signed the request).
pub fn parse_cert_rep(input: &[u8], requester_key: &KeyPair) -> Result<CertRep, ScepError> {
    let signed = verify_signed_data(input, None)?;
    let code = string_attr(&signed, oid::SCEP_MESSAGE_TYPE, "messageType")?
        .ok_or(ScepError::MissingAttribute("messageType"))?
        .0;
    match MessageType::from_code(code.trim()) {
        Some(MessageType::CertRep) => {}
        Some(other) => return Err(ScepError::UnexpectedMessageType(other)),
        None => return Err(ScepError::UnsupportedMessageType(printable_excerpt(&code))),
    }
    let status_code = string_attr(&signed, oid::SCEP_PKI_STATUS, "pkiStatus")?
        .ok_or(ScepError::MissingAttribute("pkiStatus"))?
        .0;
    let status = PkiStatus::from_code(status_code.trim())
        .ok_or_else(|| ScepError::InvalidAttribute("pkiStatus", printable_excerpt(&status_code)))?;
    let fail_info = match string_attr(&signed, oid::SCEP_FAIL_INFO, "failInfo")? {
        None => None,
        Some((c, _)) => Some(
            FailInfo::from_code(c.trim())
                .ok_or_else(|| ScepError::InvalidAttribute("failInfo", printable_excerpt(&c)))?,
        ),
    };
    let fail_info_text =
        string_attr(&signed, oid::SCEP_FAIL_INFO_TEXT, "failInfoText")?.map(|(t, _)| t);
    let transaction_id = string_attr(&signed, oid::SCEP_TRANSACTION_ID, "transactionID")?
        .ok_or(ScepError::MissingAttribute("transactionID"))?
        .0;
    let recipient_nonce = nonce_attr(&signed, oid::SCEP_RECIPIENT_NONCE, "recipientNonce")?
        .ok_or(ScepError::MissingAttribute("recipientNonce"))?;
    let sender_nonce = nonce_attr(&signed, oid::SCEP_SENDER_NONCE, "senderNonce")?;

    let mut issued_certificates = Vec::new();
    if status == PkiStatus::Success {
        let env = pki_envelope(&signed, "SUCCESS without pkcsPKIEnvelope")?;
        let inner = envelope::open(&env, requester_key, true, |pt| {
            tlv::read_exact(pt)
                .ok()
                .filter(|t| t.tag == 0x30)
                .map(|_| pt.to_vec())
        })
        .map_err(open_error)?;
        issued_certificates = sign::parse_certs_only(&inner)?;
    }
    let certificate = issued_certificates
        .iter()
        .find(|c| !c.is_ca())
        .or(issued_certificates.first())
        .cloned();
    if status == PkiStatus::Success && certificate.is_none() {
        return Err(ScepError::Malformed(
            "SUCCESS reply holds no certificate".into(),
        ));
    }
    Ok(CertRep {
        status,
        fail_info,
        fail_info_text,
        transaction_id,
        recipient_nonce,
        sender_nonce,
        certificate,
        issued_certificates,
        signer: signed.signer().clone(),
    })
}

/// What a client puts in a request built by [`build_pkcs_req`].
#[derive(Debug, Clone)]
pub struct RequestOptions<'a> {
    /// PKCSReq, RenewalReq or CertPoll.
    pub message_type: MessageType,
    pub transaction_id: &'a str,
    pub cipher: EnvelopeCipher,
    pub digest: DigestAlgorithm,
}

/// A request made by [`build_pkcs_req`]: the DER message and the senderNonce in it
/// (which the CertRep's recipientNonce must echo).
#[derive(Debug, Clone)]
pub struct BuiltRequest {
    pub der: Vec<u8>,
    pub sender_nonce: Vec<u8>,
}

/// Builds a SCEP request as a client does: `content` (a DER CSR; for CertPoll an
/// IssuerAndSubject) encrypted to `recipient_cert` (the RA, or the CA when it has no RA),
/// in a SignedData by `signer_key` / `signer_cert` (a self-signed certificate over the
/// CSR key for PKCSReq, the current certificate for RenewalReq) with messageType,
/// transactionID and a fresh 16-byte senderNonce.
pub fn build_pkcs_req(
    content: &[u8],
    signer_key: &KeyPair,
    signer_cert: &Certificate,
    recipient_cert: &Certificate,
    opts: &RequestOptions<'_>,
) -> Result<BuiltRequest, CryptoError> {
    if !matches!(
        opts.message_type,
        MessageType::PkcsReq | MessageType::RenewalReq | MessageType::CertPoll
    ) {
        return Err(CryptoError::InvalidInput(format!(
            "messageType {} is not a request this builder makes",
            opts.message_type.code()
        )));
    }
    if opts.transaction_id.is_empty() || opts.transaction_id.len() > MAX_TRANSACTION_ID {
        return Err(CryptoError::InvalidInput(format!(
            "transactionID must be 1 to {MAX_TRANSACTION_ID} characters"
        )));
    }
    let env = envelope::seal(content, recipient_cert, opts.cipher)?;
    let sender_nonce = rng::bytes(NONCE_BYTES);
    let sign_opts = SignOptions {
        digest: opts.digest,
        detached: false,
        signing_time_unix: None,
        extra_attributes: vec![
            SignedAttribute::printable(oid::SCEP_MESSAGE_TYPE, opts.message_type.code())?,
            SignedAttribute::printable(oid::SCEP_TRANSACTION_ID, opts.transaction_id)?,
            SignedAttribute::octets(oid::SCEP_SENDER_NONCE, &sender_nonce)?,
        ],
    };
    let der = sign::sign_data(&env, signer_key, signer_cert, &[], &sign_opts)?;
    Ok(BuiltRequest { der, sender_nonce })
}

/// A transactionID for a request: lowercase hex SHA-256 of the DER public key, so retries
/// with the same key share it (what RFC 8894 §3.2.1.1 suggests).
pub fn transaction_id_for(public_key_der: &[u8]) -> String {
    DigestAlgorithm::Sha256
        .digest(public_key_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A string attribute (PrintableString, or leniently UTF8String/IA5String) and its raw
/// value.
fn string_attr(
    msg: &SignedMessage,
    id: spki::ObjectIdentifier,
    name: &'static str,
) -> Result<Option<(String, Any)>, ScepError> {
    let Some(v) = msg.attribute(id)? else {
        return Ok(None);
    };
    let text = crate::cert::directory_string(v)
        .ok_or_else(|| ScepError::InvalidAttribute(name, "not a PrintableString".into()))?;
    Ok(Some((text, v.clone())))
}

/// The pkcsPKIEnvelope a message carries as its signed content (`missing`: the error when
/// it has none).
fn pki_envelope(signed: &SignedMessage, missing: &str) -> Result<EnvelopedData, ScepError> {
    let content = signed
        .content()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ScepError::Malformed(missing.into()))?;
    envelope::parse(content).map_err(|d| ScepError::Malformed(format!("pkcsPKIEnvelope: {d}")))
}

fn nonce_attr(
    msg: &SignedMessage,
    id: spki::ObjectIdentifier,
    name: &'static str,
) -> Result<Option<Vec<u8>>, ScepError> {
    let Some(v) = msg.attribute(id)? else {
        return Ok(None);
    };
    let nonce = v
        .decode_as::<OctetString>()
        .map_err(|_| ScepError::InvalidAttribute(name, "not an OCTET STRING".into()))?
        .into_bytes();
    if !NONCE_LEN.contains(&nonce.len()) {
        return Err(ScepError::InvalidAttribute(
            name,
            format!(
                "{} bytes, expected {} to {}",
                nonce.len(),
                NONCE_LEN.start(),
                NONCE_LEN.end()
            ),
        ));
    }
    Ok(Some(nonce))
}

/// Attacker-chosen text for an error message: printable ASCII only, short.
fn printable_excerpt(s: &str) -> String {
    let clean: String = s
        .chars()
        .take(24)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    format!("{clean:?}")
}
