//! `layer env add/use/ls/show/rm`: named environments in the config file. Keys are masked on
//! display; `add` prompts for missing values on a TTY and requires flags otherwise.

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;
use serde_json::{Value, json};

use crate::config::{self, ConfigFile, EnvEntry, mask};
use crate::context::{Ctx, out};
use crate::error::{CliError, Result};
use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum EnvCmd {
    /// Add (or with --force replace) an environment; uses the global --base-url, --api-key and
    /// --kube-namespace flags
    #[command(
        after_help = "Example:\n  layer env add partner --base-url https://aws-us-east-1.hevlayer.com \\\n    --api-key \"$LAYER_API_KEY\" --kube-context partner-cluster --kube-namespace hevlayer\n\nOn a TTY, a missing --base-url or --api-key is prompted for; otherwise both are required."
    )]
    Add {
        /// Environment name
        name: String,
        /// Kubeconfig context stored with the environment
        #[arg(long)]
        kube_context: Option<String>,
        /// Replace an existing environment of that name
        #[arg(long)]
        force: bool,
    },
    /// Make an environment the active one
    #[command(after_help = "Example:\n  layer env use partner")]
    Use { name: String },
    /// List environments (keys masked)
    #[command(after_help = "Example:\n  layer env ls -o names")]
    Ls,
    /// Show one environment (default: the selected or active one), key masked
    #[command(after_help = "Example:\n  layer env show partner -o json")]
    Show { name: Option<String> },
    /// Remove an environment (the active selection is cleared if it was active)
    #[command(after_help = "Example:\n  layer env rm partner")]
    Rm { name: String },
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::failure(format!("stdin: {e}")))?;
    Ok(line.trim().to_string())
}

/// Reads a secret from the terminal without echoing it (raw mode: Enter ends it, Backspace
/// erases, Esc or Ctrl-C cancels); the terminal is restored however it ends.
fn prompt_secret(label: &str) -> Result<String> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::crossterm::terminal;

    /// Leaves raw mode when dropped.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = terminal::disable_raw_mode();
        }
    }

    let term = |e: std::io::Error| CliError::failure(format!("terminal: {e}"));
    eprint!("{label} (not shown): ");
    let _ = std::io::stderr().flush();
    terminal::enable_raw_mode().map_err(term)?;
    let restore = Restore;
    let mut secret = String::new();
    let outcome = loop {
        let Event::Key(k) = event::read().map_err(term)? else {
            continue;
        };
        if k.kind == KeyEventKind::Release {
            continue;
        }
        match k.code {
            KeyCode::Enter => break Ok(()),
            KeyCode::Esc => break Err(CliError::failure("cancelled")),
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                break Err(CliError::failure("cancelled"));
            }
            KeyCode::Backspace => {
                secret.pop();
            }
            KeyCode::Char(c) => secret.push(c),
            _ => {}
        }
    };
    drop(restore);
    eprintln!();
    outcome.map(|()| secret.trim().to_string())
}

fn entry_json(name: &str, e: &EnvEntry, active: bool) -> Value {
    json!({
        "name": name,
        "active": active,
        "base_url": e.base_url,
        "api_key": e.api_key.as_deref().map(mask),
        "kube_context": e.kube_context,
        "kube_namespace": e.kube_namespace,
    })
}

/// Runs an `env` subcommand.
pub fn run(ctx: &Ctx, cmd: EnvCmd) -> Result<()> {
    let path = config::config_path()?;
    let mut cfg: ConfigFile = config::load(&path)?;
    match cmd {
        EnvCmd::Add {
            name,
            kube_context,
            force,
        } => {
            if name.trim().is_empty() {
                return Err(CliError::usage("the environment name is empty"));
            }
            if cfg.envs.contains_key(&name) && !force {
                return Err(CliError::failure(format!(
                    "environment {name:?} already exists (pass --force to replace it)"
                )));
            }
            let tty = std::io::stdin().is_terminal();
            let mut base_url = ctx.flags.base_url.clone();
            let mut api_key = ctx.flags.api_key.clone();
            if tty {
                if base_url.is_none() {
                    base_url = Some(prompt("Base URL")?).filter(|s| !s.is_empty());
                }
                if api_key.is_none() {
                    api_key = Some(prompt_secret("API key")?).filter(|s| !s.is_empty());
                }
            }
            let Some(base_url) = base_url else {
                return Err(CliError::usage(
                    "env add needs --base-url (stdin is not a terminal, so it cannot prompt)",
                ));
            };
            let Some(api_key) = api_key else {
                return Err(CliError::usage(
                    "env add needs --api-key (stdin is not a terminal, so it cannot prompt)",
                ));
            };
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(CliError::usage(format!(
                    "--base-url {base_url:?} must start with http:// or https://"
                )));
            }
            cfg.envs.insert(
                name.clone(),
                EnvEntry {
                    base_url: Some(base_url),
                    api_key: Some(api_key),
                    kube_context: kube_context.or(ctx.flags.context.clone()),
                    kube_namespace: ctx.flags.kube_namespace.clone(),
                },
            );
            config::save(&path, &cfg)?;
            eprintln!("added environment {name:?} to {}", path.display());
            Ok(())
        }
        EnvCmd::Use { name } => {
            if !cfg.envs.contains_key(&name) {
                return Err(CliError::failure(format!("unknown environment {name:?}")));
            }
            cfg.active = Some(name.clone());
            config::save(&path, &cfg)?;
            eprintln!("active environment: {name}");
            Ok(())
        }
        EnvCmd::Ls => {
            let active = cfg.active.clone();
            match ctx.format {
                Format::Names => {
                    let names: String = cfg.envs.keys().map(|n| format!("{n}\n")).collect();
                    out(&names)
                }
                Format::Json => {
                    let list: Vec<Value> = cfg
                        .envs
                        .iter()
                        .map(|(n, e)| entry_json(n, e, active.as_deref() == Some(n)))
                        .collect();
                    out(&output::json(&json!({ "active": active, "envs": list })))
                }
                Format::Table => {
                    let rows: Vec<Vec<String>> = cfg
                        .envs
                        .iter()
                        .map(|(n, e)| {
                            vec![
                                if active.as_deref() == Some(n) {
                                    "*"
                                } else {
                                    ""
                                }
                                .to_string(),
                                n.clone(),
                                output::opt(e.base_url.as_deref()),
                                output::opt(e.api_key.as_deref().map(mask)),
                                output::opt(e.kube_context.as_deref()),
                                output::opt(e.kube_namespace.as_deref()),
                            ]
                        })
                        .collect();
                    out(&output::table(
                        &[
                            "ACTIVE",
                            "NAME",
                            "BASE_URL",
                            "API_KEY",
                            "KUBE_CONTEXT",
                            "KUBE_NAMESPACE",
                        ],
                        &rows,
                    ))
                }
            }
        }
        EnvCmd::Show { name } => {
            let name = match name
                .or_else(|| ctx.flags.env.clone())
                .or_else(|| std::env::var("LAYER_ENV").ok().filter(|s| !s.is_empty()))
                .or_else(|| cfg.active.clone())
            {
                Some(n) => n,
                None => return Err(CliError::failure("no environment named and none is active")),
            };
            let Some(e) = cfg.envs.get(&name) else {
                return Err(CliError::failure(format!("unknown environment {name:?}")));
            };
            let active = cfg.active.as_deref() == Some(name.as_str());
            match ctx.format {
                Format::Names => out(&format!("{name}\n")),
                Format::Json => out(&output::json(&entry_json(&name, e, active))),
                Format::Table => out(&output::fields(&[
                    ("name", name.clone()),
                    ("active", active.to_string()),
                    ("base_url", output::opt(e.base_url.as_deref())),
                    ("api_key", output::opt(e.api_key.as_deref().map(mask))),
                    ("kube_context", output::opt(e.kube_context.as_deref())),
                    ("kube_namespace", output::opt(e.kube_namespace.as_deref())),
                ])),
            }
        }
        EnvCmd::Rm { name } => {
            if cfg.envs.remove(&name).is_none() {
                return Err(CliError::failure(format!("unknown environment {name:?}")));
            }
            if cfg.active.as_deref() == Some(name.as_str()) {
                cfg.active = None;
            }
            config::save(&path, &cfg)?;
            eprintln!("removed environment {name:?}");
            Ok(())
        }
    }
}
