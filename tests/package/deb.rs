//! The .deb that `cargo deb` builds.
