//! examples/prometheus with node_exporter and promtool.
