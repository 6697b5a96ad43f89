//! The vocabulary of SCEP messages (RFC 8894 §3.2.1): messageType, pkiStatus and failInfo,
//! and why a SCEP (or any CMS SignedData) message was refused. Below the message code
//! itself, so that the CSR reader and the CMS verifier can name their failures too.

use std::fmt;

/// Messages larger than this are refused before any parsing (micromdm caps SCEP bodies
/// at 2 MiB; a PKCSReq is a few kilobytes, a signed profile rarely more than 100 KiB).
pub const MAX_MESSAGE_LEN: usize = 2 << 20;

/// SCEP messageType values (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 3: the server's reply.
    CertRep,
    /// 17: request signed with a certificate our CA issued earlier.
    RenewalReq,
    /// 19: initial enrolment, signed with a self-signed certificate.
    PkcsReq,
    /// 20: CertPoll (GetCertInitial) after a PENDING answer.
    CertPoll,
    /// 21: GetCert (not supported by this server).
    GetCert,
    /// 22: GetCRL (not supported by this server).
    GetCrl,
}

impl MessageType {
    /// The decimal string carried in the attribute.
    pub fn code(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }

    pub fn from_code(code: &str) -> Option<MessageType> {
        [
            MessageType::CertRep,
            MessageType::RenewalReq,
            MessageType::PkcsReq,
            MessageType::CertPoll,
            MessageType::GetCert,
            MessageType::GetCrl,
        ]
        .into_iter()
        .find(|m| m.code() == code)
    }
}

/// pkiStatus of a CertRep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PkiStatus {
    Success,
    Failure,
    Pending,
}

impl PkiStatus {
    pub fn code(self) -> &'static str {
        match self {
            PkiStatus::Success => "0",
            PkiStatus::Failure => "2",
            PkiStatus::Pending => "3",
        }
    }

    pub fn from_code(code: &str) -> Option<PkiStatus> {
        [PkiStatus::Success, PkiStatus::Failure, PkiStatus::Pending]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// failInfo of a FAILURE CertRep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailInfo {
    /// 0: unrecognised or unsupported algorithm.
    BadAlg,
    /// 1: integrity check (signature, digest) failed.
    BadMessageCheck,
    /// 2: transaction not permitted or supported (bad challenge, refused CSR, ...).
    BadRequest,
    /// 3: signingTime too far from the server's time.
    BadTime,
    /// 4: no certificate could be identified matching the criteria.
    BadCertId,
}

impl FailInfo {
    pub fn code(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    pub fn from_code(code: &str) -> Option<FailInfo> {
        [
            FailInfo::BadAlg,
            FailInfo::BadMessageCheck,
            FailInfo::BadRequest,
            FailInfo::BadTime,
            FailInfo::BadCertId,
        ]
        .into_iter()
        .find(|f| f.code() == code)
    }
}

/// Why a SCEP (or any CMS SignedData) message was refused. Messages name the problem
/// and never contain key material or challenge passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScepError {
    /// Larger than [`crate::MAX_MESSAGE_LEN`]; holds the size.
    TooLarge(usize),
    /// Not BER/DER, not CMS, or a structure is missing or damaged.
    Malformed(String),
    /// A CMS message, but not SignedData; holds its content type.
    NotSignedData(String),
    /// A digest, signature or cipher we do not implement; names it.
    UnsupportedAlgorithm(String),
    /// A required signed attribute is absent.
    MissingAttribute(&'static str),
    /// A signed attribute has the wrong type or value.
    InvalidAttribute(&'static str, String),
    /// messageType this server does not handle (GetCert, GetCRL, unknown numbers).
    UnsupportedMessageType(String),
    /// The operation does not apply to this messageType (e.g. a CSR from CertPoll).
    UnexpectedMessageType(MessageType),
    /// The signer's certificate is not in the message.
    SignerCertificateMissing,
    /// A key that is not RSA or outside the accepted sizes.
    UnacceptableKey(String),
    /// The messageDigest attribute does not match the content (content altered).
    MessageDigestMismatch,
    /// The signature does not verify with the signer certificate's key.
    BadSignature,
    /// The envelope did not open with our key: not encrypted to it, or damaged. The two
    /// are deliberately not told apart (no padding oracle).
    DecryptFailed,
    /// The decrypted request is not a valid PKCS#10 CSR.
    InvalidCsr(String),
    /// The CSR's self-signature does not verify.
    CsrSignature,
}

impl ScepError {
    /// The failInfo a CertRep FAILURE should carry for this error.
    pub fn fail_info(&self) -> FailInfo {
        match self {
            ScepError::UnsupportedAlgorithm(_) | ScepError::UnacceptableKey(_) => FailInfo::BadAlg,
            ScepError::MessageDigestMismatch
            | ScepError::BadSignature
            | ScepError::SignerCertificateMissing
            | ScepError::CsrSignature => FailInfo::BadMessageCheck,
            _ => FailInfo::BadRequest,
        }
    }
}

impl fmt::Display for ScepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScepError::TooLarge(n) => write!(
                f,
                "message of {n} bytes exceeds the {} byte limit",
                MAX_MESSAGE_LEN
            ),
            ScepError::Malformed(d) => write!(f, "malformed message: {d}"),
            ScepError::NotSignedData(ct) => {
                write!(f, "expected CMS SignedData, got content type {ct}")
            }
            ScepError::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm: {a}"),
            ScepError::MissingAttribute(a) => write!(f, "signed attribute {a} is missing"),
            ScepError::InvalidAttribute(a, d) => write!(f, "signed attribute {a} is invalid: {d}"),
            ScepError::UnsupportedMessageType(t) => {
                write!(f, "SCEP messageType {t} is not supported")
            }
            ScepError::UnexpectedMessageType(t) => write!(
                f,
                "not possible for SCEP messageType {} ({t:?})",
                t.code()
            ),
            ScepError::SignerCertificateMissing => {
                f.write_str("the signer's certificate is not included in the message")
            }
            ScepError::UnacceptableKey(d) => write!(f, "unacceptable key: {d}"),
            ScepError::MessageDigestMismatch => {
                f.write_str("messageDigest does not match the content (altered in transit?)")
            }
            ScepError::BadSignature => {
                f.write_str("the signature does not verify with the signer certificate")
            }
            ScepError::DecryptFailed => f.write_str(
                "the envelope does not decrypt with our key (encrypted to another certificate, or damaged)",
            ),
            ScepError::InvalidCsr(d) => write!(f, "invalid certificate request: {d}"),
            ScepError::CsrSignature => {
                f.write_str("the certificate request's self-signature does not verify")
            }
        }
    }
}

impl std::error::Error for ScepError {}
