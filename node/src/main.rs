//! `vdxd --home DIR`: the agency's store-and-forward daemon, in the foreground, with structured logs
//! on standard error (`RUST_LOG` filters them; default `info`). Stops cleanly on SIGTERM or SIGINT.
//!
//! Exit codes: 0 after a clean stop, 1 when the node could not start, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let home = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--version" | "-V"), None, None) => {
            println!("vdxd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        (Some("--home"), Some(home), None) => PathBuf::from(home),
        _ => {
            eprintln!("usage: vdxd --home DIR");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vdxd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(vdx_node::daemon::run(&home)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, home = %home.display(), "vdxd cannot start");
            ExitCode::from(1)
        }
    }
}
