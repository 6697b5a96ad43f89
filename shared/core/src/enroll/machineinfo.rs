//! The signed MachineInfo a device sends when it asks for its enrollment profile: the
//! body of the ADE request, and (base64) the `x-apple-aspen-deviceinfo` header of web
//! enrollment. See Apple's `other/machineinfo.yaml` (tests/vectors) and "Device Assignment".
//!
//! The body is a CMS SignedData with the plist attached, as devices make it: BER with
//! indefinite lengths and a chunked content, SHA-1 or SHA-256, signed by the device's
//! RSA-1024 identity issued by Apple iPhone Device CA. That CA expired in 2014 and still
//! signs: the chain is checked by signatures only, never by validity dates.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use mdm_crypto::{Certificate, ScepError, verify_signed_data};

use super::EnrollError;

/// Apple iPhone Device CA (public certificate; expired 2014-04-16, still the issuer of
/// device identities): the default trust anchor.
pub const APPLE_IPHONE_DEVICE_CA_PEM: &str = include_str!("apple-iphone-device-ca.pem");
/// Intermediates taken from the message itself between the signer and an anchor.
const MAX_CHAIN: usize = 4;

/// What the device says about itself (keys of `other/machineinfo.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub udid: String,
    pub serial: String,
    /// `PRODUCT`, e.g. `iPhone14,5`.
    pub product: Option<String>,
    /// `VERSION`: the build, e.g. `21C66`.
    pub build_version: Option<String>,
    /// `OS_VERSION` (iOS/tvOS 17+, macOS 14+), e.g. `17.2`.
    pub os_version: Option<String>,
    pub supplemental_build_version: Option<String>,
    pub supplemental_os_version_extra: Option<String>,
    pub imei: Option<String>,
    pub meid: Option<String>,
    pub language: Option<String>,
    /// The device understands the 403 `com.apple.softwareupdate.required` answer.
    pub can_request_software_update: bool,
    pub software_update_device_id: Option<String>,
    pub has_pairing_token: bool,
}

impl MachineInfo {
    /// Reads the plist (XML or binary). UDID and SERIAL are required; other keys are
    /// optional (older devices omit some) but must have their documented types.
    pub fn parse(plist_bytes: &[u8]) -> Result<MachineInfo, String> {
        let v: plist::Value = plist::from_bytes(plist_bytes)
            .map_err(|e| format!("MachineInfo is not a plist: {e}"))?;
        let d = v.as_dictionary().ok_or("MachineInfo is not a dictionary")?;
        let string = |key: &str| -> Result<Option<String>, String> {
            match d.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_string()
                    .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
                    .ok_or_else(|| format!("{key} must be a string")),
            }
        };
        let required = |key: &str| -> Result<String, String> {
            let s = string(key)?.ok_or_else(|| format!("{key} is missing"))?;
            if s.len() > 128 || s.chars().any(char::is_control) {
                return Err(format!("{key} is not a plausible identifier"));
            }
            Ok(s)
        };
        let can_update = match d.get("MDM_CAN_REQUEST_SOFTWARE_UPDATE") {
            None => false,
            Some(v) => v
                .as_boolean()
                .ok_or("MDM_CAN_REQUEST_SOFTWARE_UPDATE must be a boolean")?,
        };
        let has_pairing_token = match d.get("PAIRING_TOKEN") {
            None => false,
            Some(plist::Value::Data(t)) => !t.is_empty(),
            Some(_) => return Err("PAIRING_TOKEN must be data".into()),
        };
        Ok(MachineInfo {
            udid: required("UDID")?,
            serial: required("SERIAL")?,
            product: string("PRODUCT")?,
            build_version: string("VERSION")?,
            os_version: string("OS_VERSION")?,
            supplemental_build_version: string("SUPPLEMENTAL_BUILD_VERSION")?,
            supplemental_os_version_extra: string("SUPPLEMENTAL_OS_VERSION_EXTRA")?,
            imei: string("IMEI")?,
            meid: string("MEID")?,
            language: string("LANGUAGE")?,
            can_request_software_update: can_update,
            software_update_device_id: string("SOFTWARE_UPDATE_DEVICE_ID")?,
            has_pairing_token,
        })
    }
}

/// Trust anchors from PEM text: every `CERTIFICATE` block. Empty text: Apple iPhone
/// Device CA.
pub fn anchors_from_pem(text: &str) -> Result<Vec<Certificate>, String> {
    let text = if text.trim().is_empty() {
        APPLE_IPHONE_DEVICE_CA_PEM
    } else {
        text
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let block = &rest[start..];
        let end = block
            .find("-----END CERTIFICATE-----")
            .ok_or("unterminated PEM certificate")?
            + "-----END CERTIFICATE-----".len();
        out.push(Certificate::from_pem(&block[..end]).map_err(|e| e.to_string())?);
        rest = &block[end..];
    }
    if out.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(out)
}

/// A verified MachineInfo and the device certificate that signed it.
#[derive(Debug, Clone)]
pub struct VerifiedMachineInfo {
    pub info: MachineInfo,
    pub signer: Certificate,
}

fn signature_error(e: ScepError) -> EnrollError {
    match e {
        ScepError::Malformed(_) | ScepError::NotSignedData(_) | ScepError::TooLarge(_) => {
            EnrollError::malformed(format!("not a CMS SignedData MachineInfo: {e}"))
        }
        other => EnrollError::forbidden(
            "signature.invalid",
            format!("MachineInfo signature rejected: {other}"),
        ),
    }
}

/// Whether `cert` chains to one of `anchors`, through at most [`MAX_CHAIN`] of the
/// `intermediates` the message carried. Signatures only: validity dates are ignored
/// (Apple's device CA expired in 2014 and still signs).
pub fn chains_to(
    cert: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
) -> bool {
    let mut current = cert.clone();
    for _ in 0..=MAX_CHAIN {
        if anchors.iter().any(|a| current.verify_issued_by(a).is_ok()) {
            return true;
        }
        let Some(next) = intermediates
            .iter()
            .find(|i| *i != &current && i.is_ca() && current.verify_issued_by(i).is_ok())
        else {
            return false;
        };
        current = next.clone();
    }
    false
}

/// Verifies a signed MachineInfo (DER or BER CMS, attached content) against `anchors`
/// and reads it. Refusals: 400 for what is not a signed MachineInfo at all, 403 for a
/// signature that does not verify or a signer that does not chain to an anchor.
pub fn verify(body: &[u8], anchors: &[Certificate]) -> Result<VerifiedMachineInfo, EnrollError> {
    if body.is_empty() {
        return Err(EnrollError::malformed(
            "empty body: a signed MachineInfo is expected",
        ));
    }
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"<?xml")
        || trimmed.starts_with(b"<plist")
        || body.starts_with(b"bplist")
    {
        return Err(EnrollError::forbidden(
            "signature.missing",
            "MachineInfo is not signed: a CMS SignedData is required",
        ));
    }
    let msg = verify_signed_data(body, None).map_err(signature_error)?;
    if !msg.is_data() {
        return Err(EnrollError::malformed(
            "signed content is not of type id-data",
        ));
    }
    let content = msg
        .content()
        .ok_or_else(|| EnrollError::malformed("signature carries no MachineInfo"))?;
    if !chains_to(msg.signer(), msg.certificates(), anchors) {
        return Err(EnrollError::forbidden(
            "signature.untrusted",
            format!(
                "MachineInfo signer {:?} is not issued by the configured Apple device CA",
                msg.signer().subject()
            ),
        ));
    }
    let info = MachineInfo::parse(content).map_err(EnrollError::malformed)?;
    Ok(VerifiedMachineInfo {
        info,
        signer: msg.signer().clone(),
    })
}

/// The anchors configured in `apple_device_ca` (default Apple iPhone Device CA). A value
/// that does not parse is an operator error (500), never an open door.
pub async fn configured_anchors(
    vars: &impl crate::Variables,
) -> Result<Vec<Certificate>, EnrollError> {
    let text = match vars.get(super::APPLE_DEVICE_CA).await {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => {
            return Err(EnrollError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.misconfigured",
                format!("variable {}: {e}", super::APPLE_DEVICE_CA),
            ));
        }
    };
    anchors_from_pem(&text).map_err(|e| {
        EnrollError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.misconfigured",
            format!(
                "variable {} holds no usable certificate: {e}",
                super::APPLE_DEVICE_CA
            ),
        )
    })
}
