//! Check-in messages (Apple: "Check-in") and the `Mdm-Signature` every
//! request carries when the profile says `SignMessage`: a detached CMS SignedData over the
//! exact body, SHA-256, signingTime, the MDM identity's certificate embedded (made with
//! `mdm_crypto::sign_data`, the same way the core's check-in tests sign).

use base64::Engine;
use mdm_crypto::SignOptions;
use plist::{Dictionary, Value};

use crate::http::{Http, HttpResponse};
use crate::{Device, DeviceKind, SimError, fakeca, random_bytes, random_uuid, to_xml};

fn body_digest(body: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(body).into()
}

pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";
pub const REPORT_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm";

/// A macOS user (user channel). Each has its own push token and PushMagic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's GUID (`UserID`).
    pub user_id: String,
    pub short_name: String,
    pub long_name: String,
    pub push_token: Vec<u8>,
    pub push_magic: String,
    pub not_on_console: bool,
}

impl User {
    pub fn new(short_name: &str, long_name: &str) -> User {
        User {
            user_id: random_uuid(),
            short_name: short_name.to_owned(),
            long_name: long_name.to_owned(),
            push_token: random_bytes(32),
            push_magic: random_uuid(),
            not_on_console: false,
        }
    }
}

/// The `Mdm-Signature` header value for `body` by `id`.
pub fn mdm_signature(id: &crate::MdmIdentity, body: &[u8]) -> Result<String, SimError> {
    let opts = SignOptions {
        detached: true,
        signing_time_unix: Some(fakeca::now_unix()),
        ..SignOptions::default()
    };
    let sign = |m: &[u8]| crate::fast_sign::sign(&id.key, &id.certificate, opts.digest, m);
    let der = mdm_crypto::sign_data_with(body, &id.certificate, &[], &opts, &sign)
        .map_err(|e| SimError::Crypto(format!("Mdm-Signature: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der))
}

impl Device {
    fn mdm_or_err(&self) -> Result<&crate::MdmPayload, SimError> {
        self.mdm.as_ref().ok_or_else(|| {
            SimError::NotReady("no MDM settings: install an enrollment profile first".into())
        })
    }

    /// The `Mdm-Signature` for `body`, or None when the profile does not ask for it.
    pub fn sign_body(&self, body: &[u8]) -> Result<Option<String>, SimError> {
        if !self.mdm_or_err()?.sign_message {
            return Ok(None);
        }
        if let Some(s) = self.presigned.get(&body_digest(body)) {
            return Ok(Some(s.clone()));
        }
        let id = self.identity.as_ref().ok_or_else(|| {
            SimError::NotReady("no MDM identity to sign with: do SCEP first".into())
        })?;
        mdm_signature(id, body).map(Some)
    }

    /// Signs `body` now and keeps the signature for when the device sends exactly these
    /// bytes ([`Device::sign_body`]).
    pub(crate) fn presign(&mut self, body: &[u8]) -> Result<(), SimError> {
        if let Some(s) = self.sign_body(body)? {
            self.presigned.insert(body_digest(body), s);
        }
        Ok(())
    }

    /// PUTs `body` (signed) to `url`; answers as received.
    pub(crate) async fn put_signed(
        &self,
        http: &impl Http,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<HttpResponse, SimError> {
        let sig = self.sign_body(&body)?;
        let mut headers = vec![("content-type", content_type)];
        if let Some(s) = &sig {
            headers.push(("mdm-signature", s.as_str()));
        }
        Ok(http.send("PUT", url, &headers, body).await?)
    }

    /// Sends a check-in dictionary to the CheckInURL; returns the raw answer.
    pub async fn checkin_raw(
        &self,
        http: &impl Http,
        message: Dictionary,
    ) -> Result<HttpResponse, SimError> {
        let url = self.mdm_or_err()?.checkin_url().to_owned();
        self.put_signed(http, &url, CHECKIN_CONTENT_TYPE, to_xml(message))
            .await
    }

    /// A check-in that must answer 200; returns the body.
    async fn checkin_ok(&self, http: &impl Http, message: Dictionary) -> Result<Vec<u8>, SimError> {
        let what = message
            .get("MessageType")
            .and_then(Value::as_string)
            .unwrap_or("check-in")
            .to_owned();
        let resp = self.checkin_raw(http, message).await?;
        if resp.status != 200 {
            return Err(SimError::Status {
                what,
                status: resp.status,
                body: resp.body_text(),
            });
        }
        Ok(resp.body)
    }

    /// `MessageType` and the device channel's identifiers.
    fn message(&self, message_type: &str) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), message_type.into());
        let (key, id) = self.channel_id();
        d.insert(key.into(), id.to_owned().into());
        d
    }

    fn topic(&self) -> Result<String, SimError> {
        Ok(self.mdm_or_err()?.topic.clone())
    }

    /// The `Authenticate` dictionary.
    pub fn authenticate_message(&self) -> Result<Dictionary, SimError> {
        let mut d = self.message("Authenticate");
        d.insert("Topic".into(), self.topic()?.into());
        d.insert("OSVersion".into(), self.os_version.clone().into());
        d.insert("BuildVersion".into(), self.build_version.clone().into());
        d.insert("ProductName".into(), self.product.clone().into());
        d.insert("Model".into(), self.model.clone().into());
        d.insert("ModelName".into(), self.model_name.clone().into());
        // A personal device under User Enrollment tells nothing that identifies it.
        if self.enrollment_id.is_none() {
            d.insert("SerialNumber".into(), self.serial.clone().into());
            d.insert("DeviceName".into(), self.device_name.clone().into());
            if let Some(imei) = &self.imei {
                d.insert("IMEI".into(), imei.clone().into());
            }
        }
        Ok(d)
    }

    pub async fn authenticate(&mut self, http: &impl Http) -> Result<(), SimError> {
        let m = self.authenticate_message()?;
        self.checkin_ok(http, m).await.map(|_| ())
    }

    /// The device-channel `TokenUpdate` dictionary.
    pub fn token_update_message(
        &self,
        awaiting_configuration: bool,
    ) -> Result<Dictionary, SimError> {
        let mut d = self.message("TokenUpdate");
        d.insert("Topic".into(), self.topic()?.into());
        d.insert("Token".into(), Value::Data(self.push_token.clone()));
        d.insert("PushMagic".into(), self.push_magic.clone().into());
        if let Some(u) = &self.unlock_token {
            d.insert("UnlockToken".into(), Value::Data(u.clone()));
        }
        if awaiting_configuration {
            d.insert("AwaitingConfiguration".into(), true.into());
        }
        Ok(d)
    }

    /// TokenUpdate; `awaiting_configuration` true holds "Setup Assistant" until the server
    /// sends DeviceConfigured.
    pub async fn token_update(
        &mut self,
        http: &impl Http,
        awaiting_configuration: bool,
    ) -> Result<(), SimError> {
        let m = self.token_update_message(awaiting_configuration)?;
        self.checkin_ok(http, m).await?;
        self.awaiting_configuration = awaiting_configuration;
        Ok(())
    }

    /// A new push token (as after a restore), sent with a TokenUpdate.
    pub async fn rotate_push_token(&mut self, http: &impl Http) -> Result<(), SimError> {
        self.push_token = random_bytes(32);
        let awaiting = self.awaiting_configuration;
        self.token_update(http, awaiting).await
    }

    pub async fn checkout(&mut self, http: &impl Http) -> Result<(), SimError> {
        let mut d = self.message("CheckOut");
        d.insert("Topic".into(), self.topic()?.into());
        self.checkin_ok(http, d).await.map(|_| ())
    }

    /// SetBootstrapToken (macOS); `None` deletes the escrowed token.
    pub async fn set_bootstrap_token(
        &mut self,
        http: &impl Http,
        token: Option<Vec<u8>>,
    ) -> Result<(), SimError> {
        let mut d = self.message("SetBootstrapToken");
        if let Some(t) = &token {
            d.insert("BootstrapToken".into(), Value::Data(t.clone()));
        }
        if self.awaiting_configuration {
            d.insert("AwaitingConfiguration".into(), true.into());
        }
        self.checkin_ok(http, d).await?;
        self.bootstrap_token = token;
        Ok(())
    }

    /// GetBootstrapToken: the escrowed token, or None for an empty answer.
    pub async fn get_bootstrap_token(&self, http: &impl Http) -> Result<Option<Vec<u8>>, SimError> {
        let mut d = self.message("GetBootstrapToken");
        if self.awaiting_configuration {
            d.insert("AwaitingConfiguration".into(), true.into());
        }
        let body = self.checkin_ok(http, d).await?;
        if body.is_empty() {
            return Ok(None);
        }
        let v: Value = plist::from_bytes(&body)
            .map_err(|e| SimError::Protocol(format!("GetBootstrapToken answer: {e}")))?;
        match v.as_dictionary().and_then(|d| d.get("BootstrapToken")) {
            Some(Value::Data(t)) => Ok(Some(t.clone())),
            None => Ok(None),
            Some(_) => Err(SimError::Protocol(
                "GetBootstrapToken answer: BootstrapToken is not data".into(),
            )),
        }
    }

    fn user_message(&self, message_type: &str, user: &User) -> Result<Dictionary, SimError> {
        if self.kind != DeviceKind::Mac {
            return Err(SimError::NotReady(
                "user channels are simulated for macOS only".into(),
            ));
        }
        let mut d = self.message(message_type);
        d.insert("UserID".into(), user.user_id.clone().into());
        d.insert("UserShortName".into(), user.short_name.clone().into());
        d.insert("UserLongName".into(), user.long_name.clone().into());
        Ok(d)
    }

    /// UserAuthenticate (macOS user channel), first round (no DigestResponse). Returns the
    /// raw answer: a `DigestChallenge` plist, or 410 when the server declines the user.
    pub async fn user_authenticate(
        &self,
        http: &impl Http,
        user: &User,
    ) -> Result<HttpResponse, SimError> {
        let d = self.user_message("UserAuthenticate", user)?;
        self.checkin_raw(http, d).await
    }

    /// TokenUpdate on the user's channel.
    pub async fn user_token_update(&self, http: &impl Http, user: &User) -> Result<(), SimError> {
        let mut d = self.user_message("TokenUpdate", user)?;
        d.insert("Topic".into(), self.topic()?.into());
        d.insert("Token".into(), Value::Data(user.push_token.clone()));
        d.insert("PushMagic".into(), user.push_magic.clone().into());
        if user.not_on_console {
            d.insert("NotOnConsole".into(), true.into());
        }
        self.checkin_ok(http, d).await.map(|_| ())
    }
}
