//! corral-bench: load generator (filled in by the performance work).
fn main() {
    eprintln!("corral-bench: not built yet");
    std::process::exit(2);
}
