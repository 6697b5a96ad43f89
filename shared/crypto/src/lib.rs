//! Cryptography for the MDM server, pure Rust (RustCrypto) so it runs in the Spin
//! components (wasm32-wasip2):
//!
//! - [`KeyPair`]: RSA keys (PKCS#8 in and out, SPKI public key).
//! - [`Certificate`], [`self_signed_certificate`]: X.509, e.g. the certificate the admin
//!   uploads to Apple Business Manager.
//! - [`decrypt_server_token`] / [`parse_token_json`]: open the ADE server token (`.p7m`)
//!   ABM gives back and read its OAuth secrets ([`ServerTokenSecrets`]).
//! - [`sign_profile`], [`sign_data`], [`certs_only`]: CMS SignedData for signed
//!   enrollment profiles and SCEP; [`verify_signed_data`] (and, read in place,
//!   [`verify_signed_data_in_place`]) the one verifier of what others sign.
//! - [`CertificateAuthority`], [`Csr`]: the SCEP CA (with an RA key for requests) that
//!   issues device identity certificates from verified PKCS#10 requests.
//! - [`parse_pki_message`], [`cert_rep_success`] & co.: SCEP (RFC 8894) messages, server
//!   and client side ([`build_pkcs_req`], [`parse_cert_rep`]).
//!
//! Nothing here prints key material, token secrets or challenge passwords, in errors or
//! `Debug`.

mod ber;
mod ca;
mod cert;
mod cert_view;
mod csr;
mod der_cursor;
mod digest;
mod envelope;
mod error;
mod issue;
mod key;
mod modpow;
mod oid;
mod pem;
mod rng;
mod scep;
mod scep_status;
mod sign;
mod signed_data;
mod tlv;
mod token;
mod verify;

pub use ber::{BerError, cms_to_der};
pub use ca::{CaOptions, CertificateAuthority, DEFAULT_CA_KEY_BITS, IssueOptions};
pub use cert::{Certificate, self_signed_certificate};
pub use csr::{CSR_KEY_BITS, Csr, CsrParams, build_csr};
pub use digest::DigestAlgorithm;
pub use envelope::EnvelopeCipher;
pub use error::CryptoError;
pub use issue::{encrypt_server_token, token_plaintext};
pub use key::{GENERATED_KEY_BITS, KeyPair};
pub use scep::{
    BuiltRequest, CertRep, FailInfo, MessageType, PkiMessage, PkiStatus, RequestOptions, ScepError,
    build_pkcs_req, cert_rep_failure, cert_rep_pending, cert_rep_success, parse_cert_rep,
    parse_pki_message, reply_cipher, transaction_id_for,
};
pub use sign::{
    MAX_MESSAGE_LEN, SignOptions, SignedAttribute, certs_only, parse_certs_only, sign_data,
    sign_data_with, sign_profile,
};
pub use token::{
    ServerTokenSecrets, TokenFileError, decrypt_server_token, decrypt_server_token_with_cert,
    parse_token_json, read_server_token,
};
pub use verify::{
    SignedMessage, SignedMessageRef, verify_signed_data, verify_signed_data_in_place,
};
/// Returned by [`KeyPair::to_pkcs8_der`] and [`KeyPair::to_pkcs8_pem`]: wipes on drop.
pub use zeroize::Zeroizing;
