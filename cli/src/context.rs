//! What every command gets: the output format and the level-1 flags, and from them the resolved
//! settings and an API client.

use std::io::Write;

use crate::client::Api;
use crate::config::{self, Flags, Resolved};
use crate::error::{CliError, Result};
use crate::output::Format;

/// The invocation's global options.
pub struct Ctx {
    pub format: Format,
    pub flags: Flags,
}

impl Ctx {
    /// Resolves base URL, key and kube settings (process variables, then the config file).
    pub fn resolve(&self) -> Result<Resolved> {
        config::resolve(&self.flags, &|k| std::env::var(k).ok(), || {
            config::load(&config::config_path()?)
        })
    }

    /// A client for the resolved gateway.
    pub fn api(&self) -> Result<Api> {
        let r = self.resolve()?;
        Api::new(&r.base_url, r.api_key.as_deref())
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
pub fn out(s: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(s.as_bytes()).and_then(|_| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("stdout: {e}"))),
    }
}
