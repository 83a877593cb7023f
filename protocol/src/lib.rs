//! Everything vdx sends or stores as bytes: identifiers, the dispatch header, wire frames, receipts
//! and ledger formats. Pure: no sockets, no disk, no clock of its own.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod fanout;
pub mod header;
pub mod hex;
pub mod ledger;
pub mod merkle;
pub mod notice;
mod organ_code;
pub mod package;
pub mod receipt;
pub mod replies;
pub mod transfer;
pub mod utc;
pub mod wire;

pub use organ_code::{OrganCode, OrganCodeError};
