//! The other side of the exchange: what Apple Business Manager does with the `.pem` an
//! admin uploads. Encrypts a token's plaintext to a certificate as an S/MIME
//! EnvelopedData (AES-256-CBC, RSA PKCS#1 v1.5 key transport, issuer+serial recipient).
//! The DEP simulator hands these out, so the whole upload path is tested end to end.

use base64::Engine as _;

use crate::envelope::{self, EnvelopeCipher};
use crate::{Certificate, CryptoError};

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
    let der = envelope::seal(plaintext, recipient, EnvelopeCipher::Aes256Cbc)?;
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
