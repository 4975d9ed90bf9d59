//! `fake-claude`: the scripted stand-in for the `claude` CLI. All logic lives in the library
//! (see `lib.rs` for the layout); this only hands over the exit code.

fn main() {
    std::process::exit(fake_claude::run());
}
