//! The exchange with the ServerURL: `Idle`, the command in the answer, the device's
//! result, the next command, on the device channel or a macOS user channel; reports
//! signed when sent or ahead of time.

use plist::{Dictionary, Value};

use super::answers::error_chain;
use super::command::{Answered, Command, SignedReport, Status};
use crate::checkin::{REPORT_CONTENT_TYPE, User};
use crate::http::Http;
use crate::{Device, SimError, to_xml};

/// Commands one [`Device::run_until_idle`] answers at most (a server that never stops
/// sending commands is a bug the loop must not hide by spinning forever).
pub const MAX_COMMANDS_PER_SESSION: usize = 10_000;

impl Device {
    fn report_dict(&self, user: Option<&User>, status: &str) -> Dictionary {
        let mut d = Dictionary::new();
        let (key, id) = self.channel_id();
        d.insert(key.into(), id.to_owned().into());
        if let Some(u) = user {
            d.insert("UserID".into(), u.user_id.clone().into());
            d.insert("UserShortName".into(), u.short_name.clone().into());
            d.insert("UserLongName".into(), u.long_name.clone().into());
        }
        d.insert("Status".into(), status.into());
        d
    }

    /// A report to the ServerURL, signed.
    fn sign_report(&self, body: Dictionary) -> Result<SignedReport, SimError> {
        let url = self
            .mdm
            .as_ref()
            .ok_or_else(|| SimError::NotReady("no MDM settings: install a profile first".into()))?
            .server_url
            .clone();
        let status = body
            .get("Status")
            .and_then(Value::as_string)
            .unwrap_or_default()
            .to_owned();
        let body = to_xml(body);
        let signature = self.sign_body(&body)?;
        Ok(SignedReport {
            url,
            status,
            body,
            signature,
        })
    }

    /// PUTs a report to the ServerURL; the next command or None for an empty answer.
    async fn report(
        &self,
        http: &impl Http,
        body: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        let r = self.sign_report(body)?;
        self.send_signed(http, &r).await
    }

    /// `Status: Idle` on the device channel: the first queued command, or None.
    pub async fn idle(&self, http: &impl Http) -> Result<Option<Command>, SimError> {
        self.report(http, self.report_dict(None, "Idle")).await
    }

    /// The device channel's `Idle` report, signed once for [`Device::send_signed`]: its
    /// body never changes, so neither does its `Mdm-Signature`.
    pub fn signed_idle(&self) -> Result<SignedReport, SimError> {
        self.sign_report(self.report_dict(None, "Idle"))
    }

    /// Sends a report signed beforehand; the next command or None for an empty answer.
    pub async fn send_signed(
        &self,
        http: &impl Http,
        r: &SignedReport,
    ) -> Result<Option<Command>, SimError> {
        let mut headers = vec![("content-type", REPORT_CONTENT_TYPE)];
        if let Some(s) = &r.signature {
            headers.push(("mdm-signature", s.as_str()));
        }
        let resp = http.send("PUT", &r.url, &headers, r.body.clone()).await?;
        if resp.status != 200 {
            return Err(SimError::Status {
                what: format!("{} report", r.status),
                status: resp.status,
                body: resp.body_text(),
            });
        }
        if resp.body.is_empty() {
            return Ok(None);
        }
        Command::parse(&resp.body).map(Some)
    }

    /// Reports `status` for `cmd` with `response` keys; returns the next command. An
    /// `Error` without `ErrorChain` gets a generic one.
    pub async fn answer(
        &mut self,
        http: &impl Http,
        cmd: &Command,
        status: Status,
        response: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        self.answer_on(http, None, cmd, status, response).await
    }

    async fn answer_on(
        &mut self,
        http: &impl Http,
        user: Option<&User>,
        cmd: &Command,
        status: Status,
        response: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        let d = self.answer_dict(user, cmd, status, &response);
        let next = self.report(http, d).await?;
        self.history.push(Answered {
            command: cmd.clone(),
            status,
            response,
        });
        Ok(next)
    }

    /// The report that answers `cmd` with `status` and `response` keys.
    fn answer_dict(
        &self,
        user: Option<&User>,
        cmd: &Command,
        status: Status,
        response: &Dictionary,
    ) -> Dictionary {
        let mut d = self.report_dict(user, status.as_str());
        d.insert("CommandUUID".into(), cmd.uuid.clone().into());
        d.insert("RequestType".into(), cmd.request_type.clone().into());
        for (k, v) in response {
            d.insert(k.clone(), v.clone());
        }
        if status == Status::Error && !d.contains_key("ErrorChain") {
            d.insert(
                "ErrorChain".into(),
                error_chain(-1, "SimulatedDeviceErrorDomain", "Simulated failure"),
            );
        }
        d
    }

    /// The answer to `cmd` ([`Device::respond`]), signed, to be sent with
    /// [`Device::send_signed`] (e.g. at the same moment as a check-in from elsewhere).
    pub fn signed_answer(&mut self, cmd: &Command) -> Result<SignedReport, SimError> {
        let (status, response) = self.respond(cmd);
        self.sign_report(self.answer_dict(None, cmd, status, &response))
    }

    /// Signs ahead of time the device channel's `Idle` and the answers
    /// ([`Device::respond`]) it will give to `commands` (known by their CommandUUIDs before
    /// they are queued), so that sending them later costs no RSA signature. A report whose
    /// bytes turn out different is signed when sent, as always.
    pub fn presign_answers(&mut self, commands: &[Command]) -> Result<(), SimError> {
        let idle = to_xml(self.report_dict(None, "Idle"));
        self.presign(&idle)?;
        for cmd in commands {
            let (status, response) = self.respond(cmd);
            let body = to_xml(self.answer_dict(None, cmd, status, &response));
            self.presign(&body)?;
        }
        Ok(())
    }

    /// `Idle`, then answers every command ([`Device::respond`]) until the server answers
    /// empty. Returns what was answered this session.
    pub async fn run_until_idle(&mut self, http: &impl Http) -> Result<Vec<Answered>, SimError> {
        let first = self.idle(http).await?;
        self.drain(http, None, first).await
    }

    async fn drain(
        &mut self,
        http: &impl Http,
        user: Option<&User>,
        mut next: Option<Command>,
    ) -> Result<Vec<Answered>, SimError> {
        let start = self.history.len();
        let mut n = 0;
        while let Some(cmd) = next {
            n += 1;
            if n > MAX_COMMANDS_PER_SESSION {
                return Err(SimError::Protocol(format!(
                    "more than {MAX_COMMANDS_PER_SESSION} commands in one session"
                )));
            }
            let (status, response) = self.respond(&cmd);
            next = self.answer_on(http, user, &cmd, status, response).await?;
        }
        Ok(self.history[start..].to_vec())
    }

    /// `Idle` on a macOS user channel.
    pub async fn user_idle(
        &self,
        http: &impl Http,
        user: &User,
    ) -> Result<Option<Command>, SimError> {
        self.report(http, self.report_dict(Some(user), "Idle"))
            .await
    }

    /// Reports a result on a macOS user channel.
    pub async fn user_answer(
        &mut self,
        http: &impl Http,
        user: &User,
        cmd: &Command,
        status: Status,
        response: Dictionary,
    ) -> Result<Option<Command>, SimError> {
        self.answer_on(http, Some(user), cmd, status, response)
            .await
    }

    /// [`Device::run_until_idle`] on a user channel.
    pub async fn user_run_until_idle(
        &mut self,
        http: &impl Http,
        user: &User,
    ) -> Result<Vec<Answered>, SimError> {
        let first = self.user_idle(http, user).await?;
        self.drain(http, Some(user), first).await
    }
}
