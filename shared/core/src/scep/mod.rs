//! Our SCEP certificate authority (RFC 8894) at `/scep`: it issues the devices' MDM
//! identity certificates, which then sign every check-in (`Mdm-Signature`) and must chain
//! to this CA.
//!
//! - [`ca`]: the CA and RA key pairs, created on first use (race-safe), keys sealed with
//!   `storage_key`, the CA certificate also at `scep:ca-cert` for the check-in path.
//! - [`challenge`]: one-time challenges (15 minutes) handed out with enrollment profiles.
//! - [`endpoint`]: the HTTP interface (GetCACaps, GetCACert, PKIOperation GET/POST).
//! - [`issued`]: records of the certificates issued (who for, why).
//! - [`admin`]: `POST /api/v1/enrollment/challenges` for manual enrollments.
//!
//! Key layout:
//! - `scep:ca`              [`ca::StoredCa`]: CA and RA certificates (DER, base64) and their
//!   PKCS#8 keys sealed with `storage_key` (purpose `scep-ca-key` / `scep-ra-key`)
//! - `scep:ca-cert`         the CA certificate, DER (read by check-in and connect)
//! - `ctr:scep:ca-claim:<g>` claim counter of creation attempt `g` (see [`ca::authority`])
//! - `scep:ca-lease:<g>`    when attempt `g` started (a stalled creator is taken over)
//! - `scepchal:<sha256>`    a challenge record, keyed by the SHA-256 of the challenge
//! - `scepcert:<serial>`    [`issued::IssuedRecord`] of an issued certificate (hex serial)
//! - `scepdev:<device>`     serials issued for a device, newest last (bounded)

pub mod admin;
pub mod ca;
pub mod challenge;
pub mod endpoint;
pub mod issued;
