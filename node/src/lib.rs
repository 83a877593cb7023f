//! The daemon's parts. `vdxd` (src/main.rs) puts them together; each part has one job.
//!
//! - [`daemon`]: the main loop: accept peers, work through the outbox, stop cleanly on a signal.
//! - [`config`]: the node home's `config.toml`.
//! - [`receipts`]: signing and checking hop and delivery receipts (CMS over the receipt text).
//! - [`store`]: durable state — sealed objects in spool files, records and queues in sled. Nothing else
//!   in the daemon touches sled or the spool directory.
//! - [`tls`]: QUIC endpoints' mutual TLS — who may connect, decided by the trust anchors, CRLs and
//!   the directory.
//! - [`transfer`]: one dispatch over one QUIC stream, between a sender's store and a receiver's.

pub mod config;
pub mod daemon;
pub mod receipts;
pub mod store;
pub mod tls;
pub mod transfer;

#[cfg(test)]
mod testkit;
