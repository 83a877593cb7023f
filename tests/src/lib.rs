//! Helpers shared by the integration tests: locating the binaries, running commands.
