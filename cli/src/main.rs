//! `corral-cli`: a zkCli-compatible shell; see the `corral_cli` library docs.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(corral_cli::run(&args));
}
