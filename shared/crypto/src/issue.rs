//! The other side of the exchange: what Apple Business Manager does with the `.pem` an
//! admin uploads. Encrypts a token's plaintext to a certificate as an S/MIME
//! EnvelopedData (AES-256-CBC, RSA PKCS#1 v1.5 key transport, issuer+serial recipient).
//! The DEP simulator hands these out, so the whole upload path is tested end to end.

use base64::Engine as _;
use cms::builder::{
    ContentEncryptionAlgorithm, EnvelopedDataBuilder, KeyEncryptionInfo,
    KeyTransRecipientInfoBuilder,
};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use cms::enveloped_data::RecipientIdentifier;
use der::asn1::ObjectIdentifier;
use der::{Any, Decode, Encode};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;

use crate::{Certificate, CryptoError};

const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");

/// The plaintext Apple wraps the token JSON in (header block, markers, CRLF).
pub fn token_plaintext(json: &str) -> Vec<u8> {
    format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
         -----BEGIN MESSAGE-----\r\n{json}\r\n-----END MESSAGE-----\r\n"
    )
    .into_bytes()
}

/// An S/MIME `.p7m` of `plaintext` that only the key of `recipient` opens.
pub fn encrypt_server_token(
    plaintext: &[u8],
    recipient: &Certificate,
) -> Result<Vec<u8>, CryptoError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| CryptoError::Failed(format!("{what}: {e}"));
    let cert = x509_cert::Certificate::from_der(recipient.der())
        .map_err(|e| CryptoError::InvalidCertificate(e.to_string()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| fail("public key", &e))?;
    let public = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| CryptoError::InvalidCertificate(format!("not an RSA key: {e}")))?;
    let rid = RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    });
    let mut key_rng = crate::rng::SysRng;
    let mut rng = crate::rng::SysRng;
    let ktri = KeyTransRecipientInfoBuilder::new(rid, KeyEncryptionInfo::Rsa(public), &mut key_rng)
        .map_err(|e| fail("recipient", &e))?;
    let mut builder =
        EnvelopedDataBuilder::new(None, plaintext, ContentEncryptionAlgorithm::Aes256Cbc, None)
            .map_err(|e| fail("envelope", &e))?;
    builder
        .add_recipient_info(ktri)
        .map_err(|e| fail("recipient", &e))?;
    let env = builder
        .build_with_rng(&mut rng)
        .map_err(|e| fail("envelope", &e))?;
    let der = ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::encode_from(&env).map_err(|e| fail("envelope", &e))?,
    }
    .to_der()
    .map_err(|e| fail("envelope", &e))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from(
        "MIME-Version: 1.0\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\
         Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyPair, read_server_token, self_signed_certificate};

    #[test]
    fn issued_tokens_open_only_with_their_key() {
        let key = KeyPair::generate().unwrap();
        let cert =
            self_signed_certificate(&key, "depserver", 1_700_000_000, 1_900_000_000).unwrap();
        let json = r#"{"consumer_key":"CK_1","consumer_secret":"CS_1","access_token":"AT_1","access_secret":"AS_1","access_token_expiry":"2031-01-01T00:00:00Z"}"#;
        let p7m = encrypt_server_token(&token_plaintext(json), &cert).unwrap();
        let secrets = read_server_token(&p7m, &key, Some(&cert)).unwrap();
        assert_eq!(secrets.access_token, "AT_1");
        let other = KeyPair::generate().unwrap();
        assert!(read_server_token(&p7m, &other, None).is_err());
    }
}
