//! `layer completions SHELL` and `layer man`: shell completion scripts (clap_complete) and roff
//! manual pages (clap_mangen), both generated from the same clap definitions the parser uses, so
//! they can never name a command or flag the binary does not have.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Command};
use clap_complete::Shell;

use crate::context::out;
use crate::error::{CliError, Result};

/// `layer completions SHELL`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to generate for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `layer man [--dir DIR]`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (layer.1, layer-index-get.1, ...) into DIR instead of printing
    /// layer(1)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script of `shell` for `cmd` (the whole `layer` command tree).
pub fn completions(mut cmd: Command, args: &CompletionsArgs) -> Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "layer", &mut buf);
    out(&String::from_utf8_lossy(&buf))
}

/// Prints layer(1), or writes every command's page into `--dir`.
pub fn man(cmd: Command, args: &ManArgs) -> Result<()> {
    let cmd = cmd.name("layer");
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::failure(format!("{}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| CliError::failure(format!("{}: {e}", dir.display())))?;
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| CliError::failure(format!("{}: {e}", dir.display())))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".1"))
                .collect();
            names.sort();
            let _ = writeln!(
                std::io::stderr(),
                "wrote {} pages to {}",
                names.len(),
                dir.display()
            );
            out(&names.iter().map(|n| format!("{n}\n")).collect::<String>())
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| CliError::failure(format!("man page: {e}")))?;
            out(&String::from_utf8_lossy(&buf))
        }
    }
}
