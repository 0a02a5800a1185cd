//! `~/.hevlayer/config.toml`: named environments and the active one, written atomically (temp
//! file + rename) with the directory at 0700 and the file at 0600; and the five-level resolution
//! of the base URL, API key and kube settings (flags, `LAYER_*`/`HEVLAYER_*` variables, the
//! environment named by `--env`/`LAYER_ENV`, the active environment, the built-in default).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// The base URL used when nothing else names one (level 5).
pub const DEFAULT_BASE_URL: &str = "https://aws-us-east-1.hevlayer.com";

/// The whole config file.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    #[serde(default)]
    pub envs: BTreeMap<String, EnvEntry>,
}

/// One named environment (`[envs.NAME]`).
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_namespace: Option<String>,
}

/// `$HOME/.hevlayer/config.toml` (`HOME` is required: there is no other way to find it).
pub fn config_path() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join(".hevlayer").join("config.toml")),
        _ => Err(CliError::failure(
            "HOME is not set: cannot locate ~/.hevlayer/config.toml",
        )),
    }
}

/// Reads the config; a missing file is an empty config, a malformed one an error naming the file
/// and the line.
pub fn load(path: &Path) -> Result<ConfigFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(CliError::failure(format!("{}: {e}", path.display()))),
    };
    parse(&text).map_err(|m| CliError::failure(format!("{}: {m}", path.display())))
}

/// Parses config text; the error is one line naming the line and column.
pub fn parse(text: &str) -> std::result::Result<ConfigFile, String> {
    toml::from_str::<ConfigFile>(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {msg}")
            }
            None => msg,
        }
    })
}

/// Writes the config atomically: the directory is created 0700, a temp file 0600 in the same
/// directory is written, synced and renamed over the old file.
pub fn save(path: &Path, cfg: &ConfigFile) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |what: &str, e: std::io::Error| CliError::failure(format!("{what}: {e}"));
    let dir = path
        .parent()
        .ok_or_else(|| CliError::failure("config path has no directory"))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(&dir.display().to_string(), e))?;
    }
    let text = toml::to_string(cfg).map_err(|e| CliError::failure(format!("config: {e}")))?;
    let tmp = dir.join(format!(".config.toml.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(&path.display().to_string(), e)
    })
}

/// Masks an API key for display: never more than its last four characters.
pub fn mask(key: &str) -> String {
    let n = key.chars().count();
    if n >= 12 {
        let tail: String = key.chars().skip(n - 4).collect();
        format!("****{tail}")
    } else {
        "****".to_string()
    }
}

/// Level-1 values: explicit flags.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub env: Option<String>,
    pub context: Option<String>,
    pub kube_namespace: Option<String>,
}

/// Where a resolved value came from (shown by `env show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    EnvVar,
    SelectedEnv,
    ActiveEnv,
    Default,
    Unset,
}

/// The settings one invocation uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub base_url: String,
    pub base_url_source: Source,
    pub api_key: Option<String>,
    pub api_key_source: Source,
    /// The config environment consulted (selected or active), if any.
    pub env_name: Option<String>,
    pub kube_context: Option<String>,
    pub kube_namespace: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Resolves per the spec's table. `var` reads process variables; `load` reads the config file
/// and is called only when a config level is needed (an `--env`/`LAYER_ENV` selection, or a
/// value levels 1–2 left unset), so a shell exporting `LAYER_BASE_URL` and `LAYER_API_KEY`
/// needs no config file.
pub fn resolve(
    flags: &Flags,
    var: &dyn Fn(&str) -> Option<String>,
    load: impl FnOnce() -> Result<ConfigFile>,
) -> Result<Resolved> {
    let var = |name: &str| nonempty(var(name));
    let from_vars = |a: &str, b: &str| var(a).or_else(|| var(b));
    let flag_base = nonempty(flags.base_url.clone());
    let flag_key = nonempty(flags.api_key.clone());
    let var_base = from_vars("LAYER_BASE_URL", "HEVLAYER_BASE_URL");
    let var_key = from_vars("LAYER_API_KEY", "HEVLAYER_API_KEY");
    let selected = nonempty(flags.env.clone()).or_else(|| var("LAYER_ENV"));
    let need_config = selected.is_some()
        || (flag_base.is_none() && var_base.is_none())
        || (flag_key.is_none() && var_key.is_none())
        || flags.context.is_none()
        || flags.kube_namespace.is_none();
    let cfg = if need_config {
        match load() {
            Ok(c) => c,
            // Levels 1–2 already give base URL and key: an unreadable config does not matter
            // unless an environment was asked for by name.
            Err(_)
                if selected.is_none()
                    && (flag_base.is_some() || var_base.is_some())
                    && (flag_key.is_some() || var_key.is_some()) =>
            {
                ConfigFile::default()
            }
            Err(e) => return Err(e),
        }
    } else {
        ConfigFile::default()
    };
    let (env_name, entry, env_source) = match &selected {
        Some(name) => match cfg.envs.get(name) {
            Some(e) => (Some(name.clone()), Some(e.clone()), Source::SelectedEnv),
            None => {
                let known: Vec<&str> = cfg.envs.keys().map(String::as_str).collect();
                return Err(CliError::failure(format!(
                    "unknown environment {name:?} (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        },
        None => match cfg.active.as_ref() {
            Some(name) => match cfg.envs.get(name) {
                Some(e) => (Some(name.clone()), Some(e.clone()), Source::ActiveEnv),
                None => {
                    return Err(CliError::failure(format!(
                        "the active environment {name:?} is not defined in the config; run `layer env use NAME`"
                    )));
                }
            },
            None => (None, None, Source::Unset),
        },
    };
    let entry = entry.unwrap_or_default();
    let (base_url, base_url_source) = if let Some(b) = flag_base {
        (b, Source::Flag)
    } else if let Some(b) = var_base {
        (b, Source::EnvVar)
    } else if let Some(b) = nonempty(entry.base_url.clone()) {
        (b, env_source)
    } else {
        (DEFAULT_BASE_URL.to_string(), Source::Default)
    };
    let (api_key, api_key_source) = if let Some(k) = flag_key {
        (Some(k), Source::Flag)
    } else if let Some(k) = var_key {
        (Some(k), Source::EnvVar)
    } else if let Some(k) = nonempty(entry.api_key.clone()) {
        (Some(k), env_source)
    } else {
        (None, Source::Unset)
    };
    Ok(Resolved {
        base_url,
        base_url_source,
        api_key,
        api_key_source,
        env_name,
        kube_context: nonempty(flags.context.clone()).or(nonempty(entry.kube_context)),
        kube_namespace: nonempty(flags.kube_namespace.clone()).or(nonempty(entry.kube_namespace)),
    })
}

#[cfg(test)]
mod tests;
