//! vdx wire and ledger formats.
