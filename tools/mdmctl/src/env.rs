//! What one run takes from outside the command line: environment variables, standard
//! input, and whether a person watches standard error (for progress bars). Tests build
//! their own, so runs in one process never share the process environment.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

/// The variables the CLI reads.
pub const VARS: &[&str] = &["MDM_SERVER", "MDM_TOKEN", "MDM_CONTEXT", "MDMCTL_CONFIG"];

pub struct Env {
    vars: BTreeMap<String, String>,
    stdin: Box<dyn Read + Send>,
    terminal: bool,
}

impl Env {
    /// Nothing set, empty standard input, no terminal.
    pub fn new() -> Env {
        Env {
            vars: BTreeMap::new(),
            stdin: Box::new(std::io::empty()),
            terminal: false,
        }
    }

    /// This process's variables ([`VARS`]), standard input and terminal.
    pub fn process() -> Env {
        let vars = VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        Env {
            vars,
            stdin: Box::new(std::io::stdin()),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn var(mut self, name: &str, value: impl Into<String>) -> Env {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Env {
        self.stdin = Box::new(std::io::Cursor::new(bytes.into()));
        self
    }

    /// A variable, unless unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn read_stdin(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.stdin.read_to_end(&mut buf)?;
        Ok(buf)
    }

    pub fn terminal(&self) -> bool {
        self.terminal
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}
