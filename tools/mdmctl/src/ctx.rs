//! What every command works with: the output streams and format, the environment, and
//! the API client, made on first use from the connection flags, environment and
//! contexts (so `config` and `completion` run without a server).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::client::Api;
use crate::config::{self, ConnFlags};
use crate::env::Env;
use crate::error::CliError;
use crate::output::{self, Column, Format};

pub struct Ctx<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub env: Env,
    pub format: Format,
    pub conn: ConnFlags,
    pub config_flag: Option<PathBuf>,
    pub timeout: Duration,
    api: Option<Api>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
        env: Env,
        format: Format,
        conn: ConnFlags,
        config_flag: Option<PathBuf>,
        timeout: Duration,
    ) -> Ctx<'a> {
        Ctx {
            out,
            err,
            env,
            format,
            conn,
            config_flag,
            timeout,
            api: None,
        }
    }

    /// The contexts file this run reads and writes.
    pub fn config_path(&self) -> Result<PathBuf, CliError> {
        config::path(self.config_flag.as_deref(), &self.env)
    }

    /// The API client (a cheap handle).
    pub fn api(&mut self) -> Result<Api, CliError> {
        if let Some(api) = &self.api {
            return Ok(api.clone());
        }
        let path = self.config_path()?;
        let cfg = config::load(&path)?;
        let target = config::resolve(&self.conn, &self.env, &cfg)?;
        let api = Api::new(target, self.timeout)?;
        self.api = Some(api.clone());
        Ok(api)
    }

    pub fn list(&mut self, items: &[Value], columns: &[Column]) -> Result<(), CliError> {
        output::list(self.out, self.format, items, columns)
    }

    /// An answer holding a list: the list's columns in a table or CSV, the whole answer
    /// as JSON or YAML.
    pub fn answer_list(
        &mut self,
        v: &Value,
        key: &str,
        columns: &[Column],
    ) -> Result<(), CliError> {
        match self.format {
            Format::Table | Format::Csv => self.list(output::items(v, key)?, columns),
            Format::Json | Format::Yaml => self.object(v),
        }
    }

    pub fn object(&mut self, v: &Value) -> Result<(), CliError> {
        output::object(self.out, self.format, v)
    }

    pub fn done(&mut self, sentence: &str, value: &Value) -> Result<(), CliError> {
        output::done(self.out, self.format, sentence, value)
    }

    /// A line for the person on standard error (hints, what comes next).
    pub fn note(&mut self, line: &str) {
        let _ = writeln!(self.err, "{line}");
    }
}
