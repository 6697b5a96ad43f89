//! Helpers shared by the integration tests of mdm-core.

use futures::executor::block_on;
use mdm_core::dep::TokenId;
use mdm_core::dep::tokens::{self, KeyPair, TokenRecord};
use mdm_kv::{MemoryBackend, Store};

/// A token slot as the admin API creates it, before any token upload.
pub fn add_token(store: &Store<MemoryBackend>) -> TokenId {
    let id = block_on(tokens::allocate(store))
        .unwrap()
        .expect("below the token limit");
    let key = KeyPair {
        certificate: String::new(),
        sealed_key: String::new(),
        created_at: 0,
    };
    block_on(tokens::create(
        store,
        &TokenRecord::new(id, "Main".into(), key, 0),
    ))
    .unwrap();
    id
}

/// A request with a bearer key and no body.
pub fn request(method: http::Method, path: &str, key: &str) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(vec![])
        .unwrap()
}
