//! `mdmctl challenges`: one-time SCEP challenges for enrollments the server does not
//! drive itself (Apple Configurator, a hand-made profile, a test SCEP client).

use clap::Subcommand;
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::error::CliError;
use crate::output::obj;

#[derive(Subcommand, Debug)]
pub enum ChallengesCmd {
    /// Create a challenge (valid once, for 15 minutes); it is shown only now
    Create {
        /// UDID, EnrollmentID or a label for the device
        device_id: String,
        /// What the certificate is for (a-z 0-9 - _; default manual)
        #[arg(long)]
        purpose: Option<String>,
        /// Hardware serial number, when known
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
}

pub fn run(ctx: &mut Ctx, cmd: ChallengesCmd) -> Result<(), CliError> {
    let ChallengesCmd::Create {
        device_id,
        purpose,
        serial,
        user,
    } = cmd;
    let body = obj(vec![
        ("device_id", Some(json!(device_id))),
        ("purpose", purpose.map(Value::from)),
        ("serial", serial.map(Value::from)),
        ("user", user.map(Value::from)),
    ]);
    let v = ctx
        .api()?
        .send("POST", "/api/v1/enrollment/challenges", &[], Some(&body))?;
    ctx.object(&v)
}
