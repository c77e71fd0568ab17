//! The `switchyard` binary: `up`, `platform`, `gateway` and admin commands.

fn main() {
    println!("switchyard");
}
