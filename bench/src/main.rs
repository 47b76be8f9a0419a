//! `corral-bench`: see the library docs, or `corral-bench --help`.

use std::process::ExitCode;

use clap::Parser;
use corral_bench::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral-bench: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(corral_bench::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corral-bench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
