//! `symrss man` and `symrss completions`: the manual pages and shell
//! completions, generated from the command-line definitions themselves
//! (`clap_mangen`, `clap_complete`), so they never drift from `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Failure;

/// Arguments of `symrss man`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  symrss man | man -l -\n  \
    sudo symrss man --dir /usr/local/share/man/man1 && man symrss-capture")]
pub struct ManArgs {
    /// Write symrss.1 and one page per command (symrss-capture.1, ...)
    /// into DIR instead of printing symrss.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Arguments of `symrss completions`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  symrss completions bash > /etc/bash_completion.d/symrss\n  \
    symrss completions zsh > \"${fpath[1]}/_symrss\""
)]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

fn io(e: std::io::Error) -> Failure {
    Failure::Runtime(e.to_string())
}

pub fn man(a: &ManArgs) -> Result<ExitCode, Failure> {
    let cmd = crate::Cli::command();
    match &a.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out).map_err(io)?;
            out.flush().map_err(io)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Runtime(format!("{}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir).map_err(io)?;
            eprintln!("symrss: manual pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn completions(a: &CompletionsArgs) -> Result<ExitCode, Failure> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "symrss", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
