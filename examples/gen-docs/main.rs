//! Regenerates the man pages (docs/man) and shell completions
//! (docs/completions) from the binaries' clap definitions:
//!
//!     cargo run --example gen-docs
//!
//! A separate program rather than a build script or a hidden subcommand:
//! the release build neither runs nor links clap_mangen and clap_complete,
//! and `cargo test` fails (tests/package.rs) when the checked-in files
//! differ from what this writes.

mod pages;

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in pages::all() {
        let path = root.join(&file.path);
        std::fs::create_dir_all(path.parent().expect("a path under docs/"))?;
        let unchanged = std::fs::read(&path).is_ok_and(|old| old == file.text);
        if !unchanged {
            std::fs::write(&path, &file.text)?;
            println!("wrote {}", file.path);
        }
    }
    Ok(())
}
