//! `vdxd`: the agency's store-and-forward daemon.
//!
//! Delivery over QUIC (store, outbox, inbox, receipts) is the next capability to land; until then the
//! daemon only reports what it is, so that packaging and service files can already refer to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V") => {
            println!("vdxd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "vdxd {}: the delivery daemon is not part of this release yet; \
                 use `vdx seal` / `vdx open` for offline exchange",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
