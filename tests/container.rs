//! Running in a container and under Kubernetes: `--log-format json` on
//! every path, `hot-restarter-ctl check` as an exec probe through a
//! wrapper's whole life, the start-up warning about /dev/shm (in a private
//! mount namespace), and the Kubernetes example validated against the API
//! schemas. Real wrapper, real ctl, real child processes; self-contained
//! helpers (below), so that this binary leans on nothing shared.

mod container {
    pub mod harness;
    mod json_logs;
    mod kubernetes;
    mod probe;
    mod shm;
}
