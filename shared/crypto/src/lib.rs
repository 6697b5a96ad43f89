//! Cryptography for the ADE (DEP) server token, pure Rust so it runs in the Spin
//! components (wasm32-wasip2):
//!
//! - [`KeyPair`]: the server's RSA-2048 key (PKCS#8 in and out, SPKI public key).
//! - [`self_signed_certificate`]: the certificate whose `.pem` the admin uploads to
//!   Apple Business Manager.
//! - [`decrypt_server_token`] / [`parse_token_json`]: open the `.p7m` ABM gives back and
//!   read its OAuth secrets ([`ServerTokenSecrets`]).
//!
//! Nothing here prints key material or token secrets, in errors or `Debug`.

mod ber;
mod cert;
mod error;
mod issue;
mod key;
mod pem;
mod rng;
mod token;

pub use cert::{Certificate, self_signed_certificate};
pub use error::CryptoError;
pub use issue::{encrypt_server_token, token_plaintext};
pub use key::{GENERATED_KEY_BITS, KeyPair};
pub use token::{
    ServerTokenSecrets, TokenFileError, decrypt_server_token, decrypt_server_token_with_cert,
    parse_token_json, read_server_token,
};
/// Returned by [`KeyPair::to_pkcs8_der`] and [`KeyPair::to_pkcs8_pem`]: wipes on drop.
pub use zeroize::Zeroizing;
