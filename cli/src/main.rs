//! corral-cli: a zkCli-compatible shell (filled in by the client work).
fn main() {
    eprintln!("corral-cli: not built yet");
    std::process::exit(2);
}
