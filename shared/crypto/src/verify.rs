//! Verifying a CMS SignedData, the one verifier: exactly one signer, RSA PKCS#1 v1.5 with
//! SHA-1/256/384/512, its certificate embedded. Read in place for callers that verify on
//! every request ([`verify_signed_data_in_place`]), or kept as a [`SignedMessage`].

use std::borrow::Cow;

use der::asn1::SetOfVec;
use der::{Any, Decode, Encode};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use spki::ObjectIdentifier;
use x509_cert::attr::Attribute;

use crate::cert::Certificate;
use crate::cert_view::PublicKey;
use crate::der_cursor::ReadError;
use crate::digest::DigestAlgorithm;
use crate::oid;
use crate::scep_status::ScepError;
use crate::signed_data::{self, SignedDataView, SignerCertificate};

/// RSA sizes accepted from signers (some in the field still use RSA-1024).
pub(crate) const SIGNER_KEY_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;

/// A SignedData whose signature checked out.
#[derive(Debug, Clone)]
pub struct SignedMessage {
    content: Option<Vec<u8>>,
    content_type: ObjectIdentifier,
    signer: Certificate,
    certificates: Vec<Certificate>,
    digest: DigestAlgorithm,
    attributes: Vec<Attribute>,
}

impl SignedMessage {
    /// The encapsulated content (`None` when the message was detached).
    pub fn content(&self) -> Option<&[u8]> {
        self.content.as_deref()
    }

    /// The certificate whose key made the signature (taken from the message itself:
    /// whether to trust it is the caller's decision).
    pub fn signer(&self) -> &Certificate {
        &self.signer
    }

    /// All certificates embedded in the message, in the order sent.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest
    }

    /// Whether the content type is id-data.
    pub fn is_data(&self) -> bool {
        self.content_type == oid::ID_DATA
    }

    /// The signingTime attribute, if present and readable.
    pub fn signing_time_unix(&self) -> Option<i64> {
        let v = self.attribute(oid::SIGNING_TIME).ok()??;
        let t = x509_cert::time::Time::from_der(&v.to_der().ok()?).ok()?;
        i64::try_from(t.to_unix_duration().as_secs()).ok()
    }

    /// The single value of signed attribute `oid`; `Ok(None)` when absent, an error when
    /// it has several values.
    pub(crate) fn attribute(&self, id: ObjectIdentifier) -> Result<Option<&Any>, ScepError> {
        let mut found = self.attributes.iter().filter(|a| a.oid == id);
        let Some(attr) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() || attr.values.len() != 1 {
            return Err(ScepError::Malformed(format!(
                "signed attribute {id} must appear once with one value"
            )));
        }
        Ok(attr.values.get(0))
    }
}

/// A SignedData whose signature checked out, read in place: what it holds are slices of
/// the input (or of the DER it was converted to).
#[derive(Debug, Clone, Copy)]
pub struct SignedMessageRef<'a> {
    sd: SignedDataView<'a>,
    signer: SignerCertificate<'a>,
    digest: DigestAlgorithm,
}

impl<'a> SignedMessageRef<'a> {
    /// The encapsulated content (`None` when the message was detached).
    pub fn content(&self) -> Option<&'a [u8]> {
        self.sd.econtent
    }

    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest
    }

    /// Whether the signature covers signed attributes (rather than the content itself).
    pub fn has_signed_attributes(&self) -> bool {
        self.sd
            .signer
            .is_some_and(|si| si.signed_attributes.is_some())
    }

    /// The certificate whose key made the signature (DER, as embedded: whether to trust
    /// it is the caller's decision).
    pub fn signer_der(&self) -> &'a [u8] {
        self.signer.view.der
    }

    /// The signer certificate's `tbsCertificate` as sent: what its issuer signed.
    pub fn signer_tbs(&self) -> &'a [u8] {
        self.signer.view.tbs
    }

    /// The signer certificate's validity (Unix seconds).
    pub fn signer_not_before_unix(&self) -> i64 {
        self.signer.not_before
    }

    pub fn signer_not_after_unix(&self) -> i64 {
        self.signer.not_after
    }

    /// The owned message: every embedded certificate and the signed attributes decoded.
    fn to_message(self) -> Result<SignedMessage, ScepError> {
        let mut certificates = Vec::new();
        for c in self.sd.certificates() {
            let c = c.map_err(ReadError::after_conversion)?;
            let cert = Certificate::from_der(c.der)
                .map_err(|e| ScepError::Malformed(format!("embedded certificate: {e}")))?;
            certificates.push(cert);
        }
        let signer = certificates
            .iter()
            .find(|c| c.der() == self.signer.view.der)
            .cloned()
            .ok_or(ScepError::SignerCertificateMissing)?;
        let attributes = match self.sd.signer.and_then(|si| si.signed_attributes_der()) {
            None => Vec::new(),
            Some(der) => SetOfVec::<Attribute>::from_der(&der)
                .map_err(|e| ScepError::Malformed(format!("SignerInfo: signed attributes: {e}")))?
                .into_vec(),
        };
        let content_type = ObjectIdentifier::from_bytes(self.sd.content_type)
            .map_err(|_| ScepError::Malformed("encapsulated content has no type".into()))?;
        Ok(SignedMessage {
            content: self.sd.econtent.map(<[u8]>::to_vec),
            content_type,
            signer,
            certificates,
            digest: self.digest,
            attributes,
        })
    }
}

/// Verifies a CMS SignedData (DER or BER) made with RSA PKCS#1 v1.5 and SHA-1/256/384/512:
/// exactly one signer, its certificate embedded (matched by issuer and serial number or
/// subject key identifier), messageDigest equal to the content's digest, contentType
/// equal to the content type, and the signature over the signed attributes as sent.
/// `detached_content` supplies the content when the message does not embed it. Trust in
/// the signer certificate is left to the caller.
pub fn verify_signed_data(
    input: &[u8],
    detached_content: Option<&[u8]>,
) -> Result<SignedMessage, ScepError> {
    let der = signed_data::to_der(input)?;
    verify(
        signed_data::read_der(&der)?,
        Supplied::Detached(detached_content),
    )?
    .to_message()
}

/// [`verify_signed_data`] without copying or decoding what the caller does not ask for:
/// DER is read where it lies, BER is converted into `ber` first. The same checks, but for
/// `content`: what was signed, sent apart from the message (a signature over a request
/// body); a message that embeds its content as well (openssl's streaming output does)
/// must embed exactly this.
pub fn verify_signed_data_in_place<'a>(
    input: &'a [u8],
    content: Option<&[u8]>,
    ber: &'a mut Vec<u8>,
) -> Result<SignedMessageRef<'a>, ScepError> {
    let supplied = content.map_or(Supplied::Detached(None), Supplied::Known);
    verify(signed_data::read_in_place(input, ber)?, supplied)
}

/// Where the signed content comes from.
#[derive(Debug, Clone, Copy)]
enum Supplied<'c> {
    /// From the message, or given here when the message is detached (not both).
    Detached(Option<&'c [u8]>),
    /// Given here; a message may embed it too, byte for byte.
    Known(&'c [u8]),
}

fn verify<'a>(
    sd: SignedDataView<'a>,
    supplied: Supplied<'_>,
) -> Result<SignedMessageRef<'a>, ScepError> {
    let content: &[u8] = match (sd.econtent, supplied) {
        (Some(_), Supplied::Detached(Some(_))) => {
            return Err(ScepError::Malformed(
                "content is both embedded and supplied separately".into(),
            ));
        }
        (Some(embedded), Supplied::Known(c)) if embedded != c => {
            return Err(ScepError::Malformed(
                "the embedded content differs from the content supplied separately".into(),
            ));
        }
        (Some(c), _) | (None, Supplied::Detached(Some(c)) | Supplied::Known(c)) => c,
        (None, Supplied::Detached(None)) => {
            return Err(ScepError::Malformed(
                "detached signature but no content was supplied".into(),
            ));
        }
    };
    let si = match (sd.signer, sd.signer_count) {
        (Some(si), _) => si,
        (None, 0) => return Err(ScepError::Malformed("the message has no signer".into())),
        (None, n) => {
            return Err(ScepError::Malformed(format!(
                "the message has {n} signers, exactly one is supported"
            )));
        }
    };
    let digest = DigestAlgorithm::from_oid_bytes(si.digest_algorithm.oid)
        .filter(|_| si.digest_algorithm.null_or_absent_params())
        .ok_or_else(|| {
            ScepError::UnsupportedAlgorithm(format!("digest {}", name(si.digest_algorithm.oid)))
        })?;
    let sig_alg = si.signature_algorithm;
    let sig_ok = (sig_alg.oid == oid::RSA_ENCRYPTION.as_bytes()
        || DigestAlgorithm::from_rsa_signature_oid_bytes(sig_alg.oid) == Some(digest))
        && sig_alg.null_or_absent_params();
    if !sig_ok {
        return Err(ScepError::UnsupportedAlgorithm(format!(
            "signature algorithm {} with digest {}",
            name(sig_alg.oid),
            digest.name()
        )));
    }
    let signer = sd
        .signer_certificate
        .ok_or(ScepError::SignerCertificateMissing)?;
    let public = signer_key(&signer)?;

    let signed: Cow<[u8]> = match si.signed_attributes_der() {
        None => content.into(),
        Some(attrs) => {
            let md = si
                .message_digest
                .ok_or(ScepError::MissingAttribute("messageDigest"))?;
            if md.tag != 0x04 {
                return Err(ScepError::InvalidAttribute(
                    "messageDigest",
                    "not an OCTET STRING".into(),
                ));
            }
            if md.content != digest.digest(content).as_slice() {
                return Err(ScepError::MessageDigestMismatch);
            }
            // Compared as encodings; decoded only to say what differs.
            if let Some(ct) = si.content_type
                && !(ct.tag == 0x06 && ct.content == sd.content_type)
            {
                let ct = ObjectIdentifier::from_der(ct.raw)
                    .map_err(|_| ScepError::InvalidAttribute("contentType", "not an OID".into()))?;
                return Err(ScepError::InvalidAttribute(
                    "contentType",
                    format!(
                        "{ct} differs from the content's type {}",
                        name(sd.content_type)
                    ),
                ));
            }
            // The signature covers the attributes as sent, with the SET OF tag.
            attrs.into()
        }
    };
    if !digest.verify_rsa(&public, &signed, si.signature) {
        return Err(ScepError::BadSignature);
    }
    // RFC 5280 §4.1.1.2: a certificate naming two algorithms is not one certificate.
    if signer.view.inner_algorithm != signer.view.outer_algorithm {
        return Err(ScepError::Malformed(
            "the signer certificate's signatureAlgorithm differs from the one in its tbsCertificate"
                .into(),
        ));
    }
    Ok(SignedMessageRef { sd, signer, digest })
}

/// The signer's RSA key, refused outside [`SIGNER_KEY_BITS`] (`rsa` also bounds the
/// exponent, which keeps the public-key operation short for any certificate).
fn signer_key(signer: &SignerCertificate<'_>) -> Result<RsaPublicKey, ScepError> {
    let unacceptable = |d: String| ScepError::UnacceptableKey(format!("signer certificate: {d}"));
    let (n, e) = match signer.public_key {
        PublicKey::Rsa { n, e } => (n, e),
        PublicKey::Other { algorithm } => {
            return Err(unacceptable(format!(
                "only RSA keys are accepted, this key is {}",
                name(algorithm)
            )));
        }
    };
    let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
        .map_err(|e| unacceptable(format!("RSA public key is not usable: {e}")))?;
    let size = key.n().bits();
    if !SIGNER_KEY_BITS.contains(&size) {
        return Err(unacceptable(format!(
            "RSA-{size} is outside the accepted {} to {} bits",
            SIGNER_KEY_BITS.start(),
            SIGNER_KEY_BITS.end()
        )));
    }
    Ok(key)
}

/// An OID's contents in dotted form, for messages.
fn name(oid: &[u8]) -> String {
    ObjectIdentifier::from_bytes(oid).map_or_else(|_| "(unreadable OID)".into(), |o| o.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyPair, SignOptions, self_signed_certificate, sign_data};

    /// The same message in BER: the outer ContentInfo with an indefinite length.
    fn indefinite(der: &[u8]) -> Vec<u8> {
        let (t, _) = crate::tlv::read(der).unwrap();
        let mut v = vec![0x30, 0x80];
        v.extend_from_slice(t.content);
        v.extend_from_slice(&[0, 0]);
        v
    }

    #[test]
    fn read_in_place_or_converted_the_same_checks_hold() {
        let key = KeyPair::generate().unwrap();
        let cert = self_signed_certificate(&key, "signer", 1_700_000_000, 1_800_000_000).unwrap();
        let body = b"<plist>body</plist>";
        let opts = SignOptions {
            detached: true,
            ..SignOptions::default()
        };
        let detached = sign_data(body, &key, &cert, &[], &opts).unwrap();
        let attached = sign_data(body, &key, &cert, &[], &SignOptions::default()).unwrap();
        for der in [&detached, &attached] {
            for input in [der.clone(), indefinite(der)] {
                let mut ber = Vec::new();
                let m = verify_signed_data_in_place(&input, Some(body), &mut ber).unwrap();
                assert_eq!(m.signer_der(), cert.der());
                assert_eq!(m.signer_not_before_unix(), cert.not_before_unix());
                assert_eq!(m.signer_not_after_unix(), cert.not_after_unix());
                assert_eq!(m.digest_algorithm(), DigestAlgorithm::Sha256);
                assert!(m.has_signed_attributes());
                assert_eq!(m.content().is_some(), der == &attached);
                assert_eq!(ber.is_empty(), input == *der, "DER in place, BER converted");
                let mut ber = Vec::new();
                let other = verify_signed_data_in_place(&input, Some(b"other"), &mut ber);
                if der == &detached {
                    assert_eq!(other.unwrap_err(), ScepError::MessageDigestMismatch);
                } else {
                    // Embedded content must be the content supplied.
                    assert!(matches!(other, Err(ScepError::Malformed(_))));
                }
                assert_eq!(
                    verify_signed_data(&input, (der == &detached).then_some(&body[..]))
                        .unwrap()
                        .signer(),
                    &cert
                );
            }
        }
        let mut ber = Vec::new();
        assert!(matches!(
            verify_signed_data_in_place(&detached, None, &mut ber),
            Err(ScepError::Malformed(_))
        ));
        let mut ber = Vec::new();
        let m = verify_signed_data_in_place(&attached, None, &mut ber).unwrap();
        assert_eq!(m.content(), Some(&body[..]));
    }
}
