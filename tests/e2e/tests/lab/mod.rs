//! The zero-touch lab lives in the library (`mdm_e2e::lab`) so that the benchmark
//! binaries use it too.

pub use mdm_e2e::lab::*;
