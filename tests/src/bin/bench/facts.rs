//! The frame of a benchmark's report (issue 9's programs): its common options, the
//! marked block of BENCHMARKS.md it may replace, Ctrl-C, markdown or JSON. The facts
//! about the machine and the build come from the harness library (`vigil_e2e::bench`).
//! Shared by the bench_* programs (`#[path]` module).

use std::path::Path;
use std::process::ExitCode;

use vigil_e2e::bench::{check_md_block, load1, write_md_block};
use vigil_e2e::interrupt::catch_interrupts;

pub use vigil_e2e::bench::Facts;

/// The options every benchmark with a report takes (`#[command(flatten)]`).
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Leave vigild's session files where the harness puts them (under /tmp) instead
    /// of on tmpfs, where /run/vigil is in production.
    #[arg(long)]
    pub state_on_disk: bool,
    /// Print one JSON object instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Also replace this benchmark's block (between its begin/end markers) in this file.
    #[arg(long, value_name = "FILE")]
    pub update_md: Option<std::path::PathBuf>,
}

/// Where a benchmark's report goes: stdout (markdown, or JSON), and with `--update-md`
/// its block in that file.
pub struct Report<'a> {
    pub program: &'static str,
    pub markers: (&'static str, &'static str),
    pub update_md: Option<&'a Path>,
    pub json: bool,
}

impl Report<'_> {
    /// Checks the `--update-md` file before a run of minutes, runs `bench` with Ctrl-C
    /// caught (it returns `None` once interrupted), then prints what `render` makes of
    /// the result (markdown and JSON) and replaces the block. `Err`: the exit code.
    pub fn run<T>(
        &self,
        bench: impl FnOnce() -> Option<T>,
        render: impl FnOnce(&Facts, &T) -> (String, serde_json::Value),
    ) -> Result<T, ExitCode> {
        let (begin, end) = self.markers;
        if let Some(path) = self.update_md
            && let Err(e) = check_md_block(path, begin, end)
        {
            eprintln!("{}: --update-md {}: {e}", self.program, path.display());
            return Err(ExitCode::from(2));
        }
        catch_interrupts();
        let mut facts = Facts::gather(self.program);
        let Some(result) = bench() else {
            eprintln!("{}: interrupted; the harness has cleaned up", self.program);
            return Err(ExitCode::from(130));
        };
        facts.load_after = load1();
        let (markdown, json) = render(&facts, &result);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&json).expect("serializes"));
        } else {
            print!("{markdown}");
        }
        if let Some(path) = self.update_md {
            if let Err(e) = write_md_block(path, begin, end, &markdown) {
                eprintln!("{}: --update-md {}: {e}", self.program, path.display());
                return Err(ExitCode::from(1));
            }
            eprintln!("{}: updated {}", self.program, path.display());
        }
        Ok(result)
    }
}
