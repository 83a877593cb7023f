//! `vdxd --home DIR`: the agency's store-and-forward daemon, in the foreground, with structured logs
//! on standard error (`RUST_LOG` filters them; default `info`). Stops cleanly on SIGTERM or SIGINT.
//!
//! `VDX_KEY_PASSPHRASE` never stays in the daemon's environment: see `vdx_node::passphrase`.
//!
//! Exit codes: 0 after a clean stop, 1 when the node could not start, 2 on a usage error.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use vdx_node::passphrase;

/// glibc's malloc gives threads that allocate at the same time arenas of their own, up to eight
/// per core, and memory freed in one arena is not reused by another: under a sustained load the
/// daemon's RSS grew past its 128 MiB budget (132 MiB in a 30-s rate benchmark, 99 MiB with two
/// arenas, at the same rate). The limit is read when the process starts, so `vdxd` starts itself
/// again once with it set, unless the environment already sets one.
const ARENAS: (&str, &str) = ("MALLOC_ARENA_MAX", "2");

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
    // The exec'd image, with the passphrase handed over: it holds it before anything else runs.
    let handed_over = std::env::var_os(passphrase::FD_ENV).is_some();
    // Runs once at most: the new image has the arena limit set and no passphrase in its
    // environment. With a passphrase it runs even when the limit is set, so that the passphrase
    // never stays in the daemon's exec'd environment (`/proc/PID/environ`).
    if !handed_over && (std::env::var_os(ARENAS.0).is_none() || passphrase::in_environment()) {
        if let Ok(exe) = std::env::current_exe() {
            let mut command = Command::new(exe);
            command.args(std::env::args_os().skip(1));
            if std::env::var_os(ARENAS.0).is_none() {
                command.env(ARENAS.0, ARENAS.1);
            }
            match passphrase::hand_over(&mut command) {
                // `_memfd` stays open until the exec, which the new image inherits.
                Ok(_memfd) => {
                    // Returns only if the exec failed; the daemon then runs as it is.
                    let error = command.exec();
                    eprintln!("vdxd: could not start itself again ({error}): running without {} and with the passphrase in its environment", ARENAS.0);
                }
                Err(e) => eprintln!("vdxd: {e}; running without {}", ARENAS.0),
            }
        }
    }
    if let Err(e) = passphrase::receive() {
        eprintln!("vdxd: {e}");
        return ExitCode::from(1);
    }
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
    match runtime.block_on(vdx_node::host::run(&home)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, home = %home.display(), "vdxd cannot start");
            ExitCode::from(1)
        }
    }
}
