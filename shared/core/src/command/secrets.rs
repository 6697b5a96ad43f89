//! Commands and results that carry secrets (Apple's schemas: passcodes, PINs, the
//! UnlockToken, password hashes, recovery keys): such a command's plist is sealed at rest
//! in the queue (opened only to deliver it), and such response keys never reach the stored
//! history (the UnlockToken the server needs is escrowed, sealed, from TokenUpdate).

use crate::config::Secret;
use crate::seal::Sealer;

/// Request types whose payload carries a secret (Apple's mdm/commands schemas).
pub const SECRET_REQUESTS: [&str; 11] = [
    "AccountConfiguration",   // passwordHash
    "ClearPasscode",          // UnlockToken
    "DeviceLock",             // PIN
    "EraseDevice",            // PIN
    "RequestMirroring",       // Password
    "RotateFileVaultKey",     // Password, PrivateKeyExportPassword
    "SetAutoAdminPassword",   // passwordHash
    "SetFirmwarePassword",    // CurrentPassword, NewPassword
    "SetRecoveryLock",        // CurrentPassword, NewPassword
    "VerifyFirmwarePassword", // Password
    "VerifyRecoveryLock",     // Password
];

/// Response keys that are secrets: kept out of the stored history.
pub const SECRET_RESPONSE_KEYS: [&str; 3] = [
    "UnlockToken",              // RequestUnlockToken
    "ActivationLockBypassCode", // ActivationLockBypassCode
    "EncryptedNewRecoveryKey",  // RotateFileVaultKey
];

/// What stands in for a secret in the history.
pub const REDACTED: &str = "(secret: not kept)";

const PURPOSE: &str = "queued-command";

pub fn carries_secret(request_type: &str) -> bool {
    SECRET_REQUESTS.contains(&request_type)
}

/// Binds a sealed command to its channel and CommandUUID.
pub fn aad(channel_tag: &str, uuid: &str) -> String {
    format!("cmd:{channel_tag}:{uuid}")
}

pub fn seal(key: &Secret, channel_tag: &str, uuid: &str, body: &[u8]) -> Vec<u8> {
    Sealer::new(key, PURPOSE).seal(body, aad(channel_tag, uuid).as_bytes())
}

pub fn open(key: &Secret, aad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    Sealer::new(key, PURPOSE).open(sealed, aad.as_bytes()).ok()
}

/// The report as the history keeps it: secret response keys replaced by [`REDACTED`].
pub fn redact(report: &plist::Dictionary) -> plist::Dictionary {
    let mut kept = report.clone();
    for k in SECRET_RESPONSE_KEYS {
        if kept.contains_key(k) {
            kept.insert(k.to_owned(), plist::Value::String(REDACTED.to_owned()));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_commands_open_only_for_their_channel_and_uuid() {
        let key = Secret::new("k".repeat(40));
        let body = b"<plist><dict><key>PIN</key><string>123456</string></dict></plist>";
        let sealed = seal(&key, "DEV", "U1", body);
        assert!(!sealed.windows(6).any(|w| w == b"123456"));
        assert_eq!(
            open(&key, &aad("DEV", "U1"), &sealed).as_deref(),
            Some(&body[..])
        );
        assert_eq!(open(&key, &aad("DEV", "U2"), &sealed), None);
        assert_eq!(open(&key, &aad("OTHER", "U1"), &sealed), None);
    }
}
