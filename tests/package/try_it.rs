//! examples/envoy/try.sh with real Envoy.
