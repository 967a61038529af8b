//! The control socket (`--control-socket PATH`) and `hot-restarter-ctl`:
//! the wire protocol ([`proto`]), with the `status` answer's renderings.

pub mod proto;
mod status;
