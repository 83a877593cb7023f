//! Where bytes meet the network: who may connect (mutual TLS over the trust anchors, CRLs and
//! directory), who gets a QUIC handshake at all under a flood, and one object over one QUIC
//! stream between a sender's store and a receiver's.

pub(crate) mod admission;
pub mod tls;
pub mod transfer;
pub(crate) mod zones;
