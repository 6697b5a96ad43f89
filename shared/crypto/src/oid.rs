//! Object identifiers used across the crate, in one place so they are spelled once.

use spki::ObjectIdentifier;

const fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

// CMS content types (RFC 5652).
pub(crate) const ID_DATA: ObjectIdentifier = oid("1.2.840.113549.1.7.1");
pub(crate) const ID_SIGNED_DATA: ObjectIdentifier = oid("1.2.840.113549.1.7.2");
pub(crate) const ID_ENVELOPED_DATA: ObjectIdentifier = oid("1.2.840.113549.1.7.3");

// CMS signed attributes (RFC 5652 §11).
pub(crate) const CONTENT_TYPE: ObjectIdentifier = oid("1.2.840.113549.1.9.3");
pub(crate) const MESSAGE_DIGEST: ObjectIdentifier = oid("1.2.840.113549.1.9.4");
pub(crate) const SIGNING_TIME: ObjectIdentifier = oid("1.2.840.113549.1.9.5");

// PKCS#9 attributes in a PKCS#10 request.
pub(crate) const CHALLENGE_PASSWORD: ObjectIdentifier = oid("1.2.840.113549.1.9.7");
pub(crate) const EXTENSION_REQUEST: ObjectIdentifier = oid("1.2.840.113549.1.9.14");

// SCEP signed attributes (RFC 8894 §3.2.1).
pub(crate) const SCEP_MESSAGE_TYPE: ObjectIdentifier = oid("2.16.840.1.113733.1.9.2");
pub(crate) const SCEP_PKI_STATUS: ObjectIdentifier = oid("2.16.840.1.113733.1.9.3");
pub(crate) const SCEP_FAIL_INFO: ObjectIdentifier = oid("2.16.840.1.113733.1.9.4");
pub(crate) const SCEP_SENDER_NONCE: ObjectIdentifier = oid("2.16.840.1.113733.1.9.5");
pub(crate) const SCEP_RECIPIENT_NONCE: ObjectIdentifier = oid("2.16.840.1.113733.1.9.6");
pub(crate) const SCEP_TRANSACTION_ID: ObjectIdentifier = oid("2.16.840.1.113733.1.9.7");
pub(crate) const SCEP_FAIL_INFO_TEXT: ObjectIdentifier = oid("1.3.6.1.5.5.7.24.1");

// Digests.
pub(crate) const SHA1: ObjectIdentifier = oid("1.3.14.3.2.26");
pub(crate) const SHA256: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.1");
pub(crate) const SHA384: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.2");
pub(crate) const SHA512: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.3");

// RSA (PKCS#1).
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier = oid("1.2.840.113549.1.1.1");
pub(crate) const SHA1_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.5");
pub(crate) const SHA256_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.13");

// Content ciphers.
pub(crate) const AES128_CBC: ObjectIdentifier = oid("2.16.840.1.101.3.4.1.2");
pub(crate) const AES192_CBC: ObjectIdentifier = oid("2.16.840.1.101.3.4.1.22");
pub(crate) const AES256_CBC: ObjectIdentifier = oid("2.16.840.1.101.3.4.1.42");
pub(crate) const DES_EDE3_CBC: ObjectIdentifier = oid("1.2.840.113549.3.7");
/// OIW desCBC: single DES, only for micromdm's scepclient (its default).
pub(crate) const DES_CBC: ObjectIdentifier = oid("1.3.14.3.2.7");

// X.509 names and extensions (RFC 5280).
pub(crate) const CN: ObjectIdentifier = oid("2.5.4.3");
/// RFC 4519 `uid` (userId): the APNs topic in an MDM push certificate's subject.
pub(crate) const UID: ObjectIdentifier = oid("0.9.2342.19200300.100.1.1");
pub(crate) const ORGANIZATION: ObjectIdentifier = oid("2.5.4.10");
pub(crate) const SUBJECT_KEY_ID: ObjectIdentifier = oid("2.5.29.14");
pub(crate) const KEY_USAGE: ObjectIdentifier = oid("2.5.29.15");
pub(crate) const SUBJECT_ALT_NAME: ObjectIdentifier = oid("2.5.29.17");
pub(crate) const BASIC_CONSTRAINTS: ObjectIdentifier = oid("2.5.29.19");
pub(crate) const AUTHORITY_KEY_ID: ObjectIdentifier = oid("2.5.29.35");
pub(crate) const EXT_KEY_USAGE: ObjectIdentifier = oid("2.5.29.37");
pub(crate) const KP_CLIENT_AUTH: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.2");
