//! vigil-docgen: writes the man pages of vigild and vigilctl and their bash, zsh and fish
//! completions from the very clap definitions the binaries parse with, so that they
//! cannot drift. The package build runs it (`vigil-docgen OUTDIR`); it is not shipped.
//!
//! OUTDIR/man/vigild.8, OUTDIR/man/vigilctl.1 (and vigilctl-SUBCOMMAND.1),
//! OUTDIR/completions/{bash/NAME, zsh/_NAME, fish/NAME.fish} for NAME in vigild, vigilctl.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use vigil_daemon::cli::{vigilctl, vigild};

#[derive(Debug, thiserror::Error)]
enum GenError {
    #[error("usage: vigil-docgen OUTDIR")]
    Usage,
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let result = match (args.next(), args.next()) {
        (Some(out), None) => generate(Path::new(&out)),
        _ => Err(GenError::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> Result<(), GenError> {
    let pages = [(vigild::Args::command(), "8", "System Administration"), (vigilctl::Cli::command(), "1", "User Commands")];
    for (cmd, section, manual) in pages {
        let name = cmd.get_name().to_string();
        let mut built = cmd.clone().disable_help_subcommand(true);
        built.build();
        man_pages(&built, section, manual, &out.join("man"))?;
        for (shell, dir, file) in
            [(Shell::Bash, "bash", name.clone()), (Shell::Zsh, "zsh", format!("_{name}")), (Shell::Fish, "fish", format!("{name}.fish"))]
        {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), name.as_str(), &mut script);
            write(&out.join("completions").join(dir).join(file), &script)?;
        }
    }
    Ok(())
}

/// One page per command and per subcommand (`vigilctl-audit-verify.1`), as the
/// top page's SUBCOMMANDS section names them.
fn man_pages(cmd: &clap::Command, section: &str, manual: &str, dir: &Path) -> Result<(), GenError> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, section, manual, dir)?;
    }
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let path = dir.join(format!("{name}.{section}"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual(manual)
        .source(format!("vigil {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .map_err(|e| GenError::Io(path.clone(), e))?;
    write(&path, &page)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), GenError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| GenError::Io(dir.to_path_buf(), e))?;
    fs::write(path, bytes).map_err(|e| GenError::Io(path.to_path_buf(), e))
}
