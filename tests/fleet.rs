//! Fleet operations with the real tools: the Ansible roll of
//! examples/ansible against several local wrappers ("hosts"), and the
//! Prometheus textfile collector and alerting rules of examples/prometheus
//! with node_exporter and promtool.
//!
//! Every test here needs a tool beyond cargo (ansible-core,
//! prometheus-node-exporter, promtool), so each is `#[ignore]`d with the
//! tool named: a plain `cargo test` reports them ignored, and `.ci/run`
//! runs them with `--include-ignored`, where a missing tool fails them.

#[path = "fleet/ansible.rs"]
mod ansible;
#[path = "fleet/hosts.rs"]
mod hosts;
#[path = "fleet/prometheus.rs"]
mod prometheus;
#[path = "package/tools.rs"]
mod tools;
