//! The outbox: which queued object goes next, to which next hop, and when to retry. The rules
//! live in a deterministic core with no I/O (`scheduler`); `outbox` only moves bytes between it,
//! the tenants' stores, QUIC and tokio.

pub(crate) mod fanout;
pub(crate) mod outbox;
pub(crate) mod scheduler;
