//! Who gets a QUIC handshake: the decision on each incoming connection attempt, made before the
//! node spends memory or a signature on it.
//!
//! A handshake in progress costs the node a quinn connection, a rustls server state and a task (some
//! 20 KiB; 16,000 first packets from one source, each accepted and held until its idle timeout,
//! took a node from 18 to 293-384 MiB in `tests/tests/flood.rs`, and glibc kept it). A QUIC Retry
//! costs nothing to keep: the token it sends carries the state, and only a client that really
//! receives at its address comes back with it. So:
//!
//! - an attempt from an address not yet validated is accepted while few handshakes are in
//!   progress (one round trip saved for a WAN peer), and otherwise answered with a Retry;
//! - per-address limits judge only validated addresses (an unvalidated source address may be
//!   forged, e.g. to lock a real peer out): an unvalidated attempt that would hit one is sent a
//!   Retry, to be judged when it comes back validated;
//! - a validated address with too many handshakes in progress is ignored (it is flooding; no
//!   answer costs nothing), as is any validated attempt while the node's handshakes are at their
//!   cap (a real peer retransmits its Initial and gets in when a slot frees);
//! - a validated address with too many connections is refused (CONNECTION_REFUSED), so that an
//!   honest peer learns why at once.
//!
//! This module is the deterministic core: it keeps the counts and decides; `host::accept_loop`
//! applies the decisions to quinn's `Incoming` and reports when handshakes and connections end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The limits of [`Admission`], from `[limits]` in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Handshakes in progress at once, all sources together.
    pub(crate) max_handshakes: usize,
    /// Handshakes in progress at once from one validated address.
    pub(crate) max_handshakes_per_ip: usize,
    /// Connections (established, or validated and in handshake) from one address.
    pub(crate) max_connections_per_ip: usize,
    /// From this many handshakes in progress on, unvalidated attempts get a Retry (0: always).
    pub(crate) retry_from_handshakes: usize,
}

/// What to do with an incoming connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Start the handshake.
    Accept,
    /// Send a QUIC Retry: the client must prove it receives at its address.
    Retry,
    /// Answer CONNECTION_REFUSED.
    Refuse,
    /// Drop it without an answer.
    Ignore,
}

/// What is known of an attempt when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The source address's IP.
    pub(crate) ip: IpAddr,
    /// Whether the client proved it receives at that address (a Retry or NEW_TOKEN token).
    pub(crate) validated: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerIp {
    /// Validated handshakes in progress.
    handshakes: usize,
    /// Established connections.
    connections: usize,
}

/// The counts the decisions rest on: handshakes in progress, and per address the validated
/// handshakes in progress and the established connections.
#[derive(Debug)]
pub(crate) struct Admission {
    caps: Caps,
    handshakes: usize,
    per_ip: HashMap<IpAddr, PerIp>,
}

impl Admission {
    /// No handshake or connection yet.
    pub(crate) fn new(caps: Caps) -> Self {
        Self {
            caps,
            handshakes: 0,
            per_ip: HashMap::new(),
        }
    }

    /// The decision on `attempt` given the counts now; nothing is counted.
    pub(crate) fn decide(&self, attempt: Attempt) -> Decision {
        let caps = &self.caps;
        let ip = self.per_ip.get(&attempt.ip).copied().unwrap_or_default();
        let ip_busy = ip.handshakes >= caps.max_handshakes_per_ip
            || ip.handshakes + ip.connections >= caps.max_connections_per_ip;
        if !attempt.validated {
            if self.handshakes >= caps.retry_from_handshakes
                || self.handshakes >= caps.max_handshakes
                || ip_busy
            {
                return Decision::Retry;
            }
            return Decision::Accept;
        }
        if ip.handshakes >= caps.max_handshakes_per_ip || self.handshakes >= caps.max_handshakes {
            return Decision::Ignore;
        }
        if ip.handshakes + ip.connections >= caps.max_connections_per_ip {
            return Decision::Refuse;
        }
        Decision::Accept
    }

    /// Decides on `attempt` and, when it is accepted, counts its handshake: the caller must then
    /// call [`Admission::handshake_ended`] once for it.
    pub(crate) fn admit(&mut self, attempt: Attempt) -> Decision {
        let decision = self.decide(attempt);
        if decision == Decision::Accept {
            self.handshakes += 1;
            if attempt.validated {
                self.per_ip.entry(attempt.ip).or_default().handshakes += 1;
            }
        }
        decision
    }

    /// An accepted handshake ended; `established` if it became a connection. Returns whether the
    /// connection may stay: false when its address already holds `max_connections_per_ip` (only
    /// an attempt accepted unvalidated can get that far). A connection that stays must be
    /// reported by [`Admission::connection_closed`] when it closes.
    pub(crate) fn handshake_ended(&mut self, attempt: Attempt, established: bool) -> bool {
        self.handshakes = self.handshakes.saturating_sub(1);
        let entry = self.per_ip.entry(attempt.ip).or_default();
        if attempt.validated {
            entry.handshakes = entry.handshakes.saturating_sub(1);
        }
        let stays = established && entry.connections < self.caps.max_connections_per_ip;
        if stays {
            entry.connections += 1;
        }
        self.forget_if_idle(attempt.ip);
        stays
    }

    /// A connection from `ip` that [`Admission::handshake_ended`] let stay has closed.
    pub(crate) fn connection_closed(&mut self, ip: IpAddr) {
        if let Some(entry) = self.per_ip.get_mut(&ip) {
            entry.connections = entry.connections.saturating_sub(1);
        }
        self.forget_if_idle(ip);
    }

    /// Handshakes in progress now.
    #[cfg(test)]
    fn handshakes(&self) -> usize {
        self.handshakes
    }

    /// Addresses with a validated handshake in progress or a connection (the map stays as small
    /// as the node's real peers, whatever a flood sent).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.per_ip.len()
    }

    fn forget_if_idle(&mut self, ip: IpAddr) {
        if self
            .per_ip
            .get(&ip)
            .is_some_and(|e| e.handshakes == 0 && e.connections == 0)
        {
            self.per_ip.remove(&ip);
        }
    }
}

/// The counts as the accept loop and the connection tasks share them.
#[derive(Debug, Clone)]
pub(crate) struct Shared(Arc<Mutex<Admission>>);

impl Shared {
    pub(crate) fn new(caps: Caps) -> Self {
        Self(Arc::new(Mutex::new(Admission::new(caps))))
    }

    /// [`Admission::admit`]; an accepted attempt comes with the guard that reports its end.
    pub(crate) fn admit(&self, attempt: Attempt) -> (Decision, Option<Handshake>) {
        let decision = self.lock().admit(attempt);
        let guard = (decision == Decision::Accept).then(|| Handshake {
            shared: self.clone(),
            attempt,
            ended: false,
        });
        (decision, guard)
    }

    // The counts stay consistent under a panic elsewhere (each update is one statement).
    fn lock(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An accepted handshake in progress: dropped before [`Handshake::established`] (failure,
/// timeout, a task aborted), it counts as ended without a connection, so no path leaks a slot.
#[derive(Debug)]
pub(crate) struct Handshake {
    shared: Shared,
    attempt: Attempt,
    ended: bool,
}

impl Handshake {
    /// The handshake made a connection; `None` when its address may hold no more connections
    /// (the caller closes it). The guard returned counts the connection until it is dropped.
    pub(crate) fn established(mut self) -> Option<Connection> {
        self.ended = true;
        let stays = self.shared.lock().handshake_ended(self.attempt, true);
        stays.then(|| Connection {
            shared: self.shared.clone(),
            ip: self.attempt.ip,
        })
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.lock().handshake_ended(self.attempt, false);
        }
    }
}

/// An established connection, counted against its address until dropped.
#[derive(Debug)]
pub(crate) struct Connection {
    shared: Shared,
    ip: IpAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.lock().connection_closed(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        max_handshakes: 6,
        max_handshakes_per_ip: 2,
        max_connections_per_ip: 3,
        retry_from_handshakes: 4,
    };

    fn attempt(ip: &str, validated: bool) -> Attempt {
        Attempt {
            ip: ip.parse().unwrap(),
            validated,
        }
    }

    #[test]
    fn unvalidated_attempts_are_accepted_while_few_handshakes_run_then_retried() {
        let mut a = Admission::new(CAPS);
        for _ in 0..4 {
            assert_eq!(a.admit(attempt("10.0.0.9", false)), Decision::Accept);
        }
        // From one forged source or many, the rest cost a Retry and no state.
        for ip in ["10.0.0.9", "10.0.0.1", "10.0.0.2"] {
            assert_eq!(a.admit(attempt(ip, false)), Decision::Retry);
        }
        assert_eq!(a.handshakes(), 4);
        // Unvalidated handshakes are not charged to the address they claim.
        assert_eq!(a.addresses(), 0);
        assert_eq!(a.admit(attempt("10.0.0.9", true)), Decision::Accept);
        assert_eq!(a.addresses(), 1);
    }

    #[test]
    fn zero_means_always_retry_unvalidated() {
        let a = Admission::new(Caps {
            retry_from_handshakes: 0,
            ..CAPS
        });
        assert_eq!(a.decide(attempt("10.0.0.1", false)), Decision::Retry);
        assert_eq!(a.decide(attempt("10.0.0.1", true)), Decision::Accept);
    }

    #[test]
    fn a_validated_source_gets_a_few_handshakes_and_the_rest_is_ignored() {
        let mut a = Admission::new(CAPS);
        let flooder = attempt("10.0.0.66", true);
        assert_eq!(a.admit(flooder), Decision::Accept);
        assert_eq!(a.admit(flooder), Decision::Accept);
        assert_eq!(a.admit(flooder), Decision::Ignore);
        // Unvalidated, the same address is asked to validate first.
        assert_eq!(a.admit(attempt("10.0.0.66", false)), Decision::Retry);
        // Another peer is not held up.
        assert_eq!(a.admit(attempt("10.0.0.7", true)), Decision::Accept);
        // A handshake that ends frees its slot.
        assert!(!a.handshake_ended(flooder, false));
        assert_eq!(a.admit(flooder), Decision::Accept);
    }

    #[test]
    fn the_global_cap_holds_whatever_the_sources() {
        let mut a = Admission::new(CAPS);
        for i in 0..6 {
            assert_eq!(
                a.admit(attempt(&format!("10.0.1.{i}"), true)),
                Decision::Accept
            );
        }
        assert_eq!(a.admit(attempt("10.0.2.1", true)), Decision::Ignore);
        assert_eq!(a.admit(attempt("10.0.2.1", false)), Decision::Retry);
        assert_eq!(a.handshakes(), 6);
        a.handshake_ended(attempt("10.0.1.0", true), true);
        assert_eq!(a.admit(attempt("10.0.2.1", true)), Decision::Accept);
    }

    #[test]
    fn connections_per_address_are_capped_and_counted_until_they_close() {
        let mut a = Admission::new(CAPS);
        let peer = attempt("192.0.2.1", true);
        for _ in 0..3 {
            assert_eq!(a.admit(peer), Decision::Accept);
            assert!(a.handshake_ended(peer, true));
        }
        assert_eq!(a.admit(peer), Decision::Refuse);
        assert_eq!(a.admit(attempt("192.0.2.1", false)), Decision::Retry);
        a.connection_closed(peer.ip);
        assert_eq!(a.admit(peer), Decision::Accept);
        // A handshake in progress holds its place among the address's connections.
        assert_eq!(a.admit(peer), Decision::Refuse);
        assert!(a.handshake_ended(peer, true));
        for _ in 0..3 {
            a.connection_closed(peer.ip);
        }
        assert_eq!(
            a.addresses(),
            0,
            "an address with nothing left is forgotten"
        );
        assert_eq!(a.handshakes(), 0);
    }

    #[test]
    fn an_unvalidated_handshake_that_completes_over_the_cap_may_not_stay() {
        let mut a = Admission::new(CAPS);
        let unvalidated = attempt("192.0.2.2", false);
        assert_eq!(a.admit(unvalidated), Decision::Accept);
        let peer = attempt("192.0.2.2", true);
        for _ in 0..3 {
            assert_eq!(a.admit(peer), Decision::Accept);
            assert!(a.handshake_ended(peer, true));
        }
        assert!(!a.handshake_ended(unvalidated, true));
        assert_eq!(a.handshakes(), 0);
    }

    #[test]
    fn guards_give_back_what_they_hold_on_every_path() {
        let shared = Shared::new(CAPS);
        let peer = attempt("192.0.2.3", true);
        let (decision, failed) = shared.admit(peer);
        assert_eq!(decision, Decision::Accept);
        let (_, done) = shared.admit(peer);
        assert_eq!(shared.admit(peer).0, Decision::Ignore);
        drop(failed);
        let connection = done.unwrap().established().unwrap();
        assert_eq!(shared.lock().handshakes(), 0);
        assert_eq!(shared.lock().addresses(), 1);
        drop(connection);
        assert_eq!(shared.lock().addresses(), 0);
        assert!(shared.admit(attempt("192.0.2.4", false)).1.is_some());
        assert_eq!(shared.lock().handshakes(), 0, "a dropped guard gives back");
    }
}
