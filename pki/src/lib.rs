//! Certificate profiles, dev CA tooling and path validation.
