//! The keys' passphrase from `VDX_KEY_PASSPHRASE`, kept out of the daemon's environment.
//!
//! Whatever a process's environment held when it was exec'd stays readable in
//! `/proc/PID/environ` (by its user and by root) for the process's whole life: removing a variable
//! later changes only the process's copy, not that block. So `vdxd` never runs as the daemon with
//! the passphrase in its exec'd environment: when it finds `VDX_KEY_PASSPHRASE`, it writes the
//! passphrase into an anonymous memory file (memfd), execs itself without the variable and with
//! [`FD_ENV`] naming that file's descriptor (as it does anyway to set `MALLOC_ARENA_MAX`), and the
//! new image reads the file, empties it, and holds the passphrase in zeroed-on-drop memory until
//! the keys are unlocked. The process keeps its pid, so a supervisor sees one daemon.
//!
//! Everything here runs in `main` before any thread starts (changing the environment is not safe
//! while other threads may read it).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use zeroize::Zeroizing;

/// The variable an operator (or a script) sets to the keys' passphrase.
pub const ENV: &str = "VDX_KEY_PASSPHRASE";
/// The variable that tells the re-exec'd `vdxd` which descriptor holds the passphrase (a number,
/// nothing secret).
pub const FD_ENV: &str = "VDX_PASSPHRASE_FD";
/// The memory file's name, by which the receiving side recognizes it.
const MEMFD_NAME: &str = "vdx-key-passphrase";
/// Longest passphrase handed over: far beyond any typed one, and a bound on what is read.
const MAX_BYTES: u64 = 4096;

/// The passphrase once moved out of the environment, until the daemon takes it to unlock its keys.
static HELD: Mutex<Option<Zeroizing<String>>> = Mutex::new(None);

/// Why the passphrase could not be handed over or received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// The memory file could not be made, written or read.
    #[error("handing the key passphrase to the daemon: {0}")]
    Io(#[from] io::Error),
    /// [`FD_ENV`] does not name the memory file `vdxd` makes (set by hand, or a stale value).
    #[error("{FD_ENV}={0:?} does not name the passphrase file vdxd hands itself; unset it")]
    NotOurs(String),
    /// The passphrase is longer than [`MAX_BYTES`].
    #[error("the key passphrase is longer than {MAX_BYTES} bytes")]
    TooLong,
    /// The passphrase is not UTF-8.
    #[error("the key passphrase is not UTF-8")]
    NotUtf8,
}

/// Whether the environment carries the passphrase (then `vdxd` must exec itself without it).
pub fn in_environment() -> bool {
    std::env::var_os(ENV).is_some()
}

/// Moves the passphrase from this process's environment into a memory file that `command`'s
/// process inherits, and takes the variable out of `command`'s environment; the returned file
/// must stay open until the exec. `None` when there is no passphrase in the environment.
pub fn hand_over(command: &mut Command) -> Result<Option<OwnedFd>, PassphraseError> {
    let Some(pass) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    let pass = Zeroizing::new(OsString::into_vec(pass));
    if pass.len() as u64 > MAX_BYTES {
        return Err(PassphraseError::TooLong);
    }
    // Without MFD_CLOEXEC: the descriptor is meant to survive the exec.
    let fd = rustix::fs::memfd_create(MEMFD_NAME, rustix::fs::MemfdFlags::empty())
        .map_err(io::Error::from)?;
    let mut file = File::from(fd);
    file.write_all(&pass)?;
    command
        .env_remove(ENV)
        .env(FD_ENV, file.as_raw_fd().to_string());
    Ok(Some(file.into()))
}

/// In the re-exec'd `vdxd`: reads the passphrase from the memory file [`FD_ENV`] names, empties
/// the file, and holds the passphrase for [`take`]. Without [`FD_ENV`], moves a passphrase still
/// in the environment (the exec failed) into the same place, so that no later reader finds it
/// there. Call it before any thread starts.
pub fn receive() -> Result<(), PassphraseError> {
    if let Some(number) = std::env::var_os(FD_ENV) {
        std::env::remove_var(FD_ENV);
        let text = number.to_string_lossy().into_owned();
        let fd: u32 = text
            .parse()
            .ok()
            .filter(|&fd| fd > 2)
            .ok_or_else(|| PassphraseError::NotOurs(text.clone()))?;
        // Opened anew through /proc (safe code cannot adopt a descriptor by number); the file is
        // emptied below, so the inherited descriptor, left open, holds nothing.
        let path = format!("/proc/self/fd/{fd}");
        let expected = format!("/memfd:{MEMFD_NAME} (deleted)");
        if std::fs::read_link(&path).ok().as_deref() != Some(Path::new(&expected)) {
            return Err(PassphraseError::NotOurs(text));
        }
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut bytes = Zeroizing::new(Vec::new());
        let read = (&mut file).take(MAX_BYTES + 1).read_to_end(&mut bytes);
        file.set_len(0)?;
        read?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(PassphraseError::TooLong);
        }
        return hold(std::mem::take(&mut *bytes));
    }
    if let Some(pass) = std::env::var_os(ENV) {
        std::env::remove_var(ENV);
        return hold(OsString::into_vec(pass));
    }
    Ok(())
}

fn hold(bytes: Vec<u8>) -> Result<(), PassphraseError> {
    let text = String::from_utf8(bytes).map_err(|e| {
        drop(Zeroizing::new(e.into_bytes()));
        PassphraseError::NotUtf8
    })?;
    *HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Zeroizing::new(text));
    Ok(())
}

/// The passphrase [`receive`] moved out of the environment, once: the daemon unlocks its keys
/// with it at start and keeps no other copy.
pub(crate) fn take() -> Option<Zeroizing<String>> {
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handing over and the receiving in one process: the command is only inspected, never
    /// run. One test, because both sides use this process's environment.
    #[test]
    fn the_passphrase_goes_through_a_memory_file_and_not_the_environment() {
        std::env::set_var(ENV, "correct horse");
        let mut command = Command::new("/bin/true");
        let fd = hand_over(&mut command).unwrap().unwrap();
        let envs: Vec<_> = command.get_envs().collect();
        assert!(envs.contains(&(ENV.as_ref(), None)), "{envs:?}");
        let number = fd.as_raw_fd().to_string();
        assert!(
            envs.contains(&(FD_ENV.as_ref(), Some(number.as_ref()))),
            "{envs:?}"
        );

        // What the exec'd image does: the variable is gone from its environment, the number is set.
        std::env::remove_var(ENV);
        std::env::set_var(FD_ENV, &number);
        receive().unwrap();
        assert!(std::env::var_os(FD_ENV).is_none());
        assert_eq!(take().as_deref().map(String::as_str), Some("correct horse"));
        assert_eq!(take(), None, "taken once");
        let mut left = Vec::new();
        File::from(fd).read_to_end(&mut left).unwrap();
        assert!(left.is_empty(), "the memory file is emptied");

        // A descriptor that is not the passphrase file is refused, and nothing is read from it.
        let other = tempfile::tempfile().unwrap();
        std::env::set_var(FD_ENV, other.as_raw_fd().to_string());
        assert!(matches!(receive(), Err(PassphraseError::NotOurs(_))));
        for bad in ["1", "x", "-3"] {
            std::env::set_var(FD_ENV, bad);
            assert!(matches!(receive(), Err(PassphraseError::NotOurs(_))));
        }

        // Still in the environment (an exec that failed): moved out of it.
        std::env::set_var(ENV, "battery staple");
        receive().unwrap();
        assert!(!in_environment());
        assert_eq!(
            take().as_deref().map(String::as_str),
            Some("battery staple")
        );
    }
}
