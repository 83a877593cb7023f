//! The order of frames in one transfer (spec: `docs/wire-frames.md`, "Order"), as two small state
//! machines with no I/O: the node feeds them frames (`handle`), calls their decisions (`accept`,
//! `reject`), and asks what to send next (`next_chunk`). A frame out of order is a [`WireError`]
//! that closes the stream.

use crate::wire::{Frame, Offer, RejectCode, WireError, MAX_CHUNK};

/// The receiving side of one stream.
#[derive(Debug)]
pub struct Inbound {
    state: InState,
}

#[derive(Debug)]
enum InState {
    AwaitOffer,
    Deciding(Offer),
    Receiving { offer: Offer, next: u64 },
    Complete(Offer),
    Closed,
}

/// What an inbound frame means for the node.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InboundEvent {
    /// Decide: [`Inbound::accept`] (with the durable offset already held) or [`Inbound::reject`].
    Offered(Offer),
    /// Append these bytes at `offset`; when `complete`, verify the digest, fsync, answer STORED.
    Chunk {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
        /// True when the object is now whole.
        complete: bool,
    },
    /// The sender gave up, with its reason.
    Rejected {
        /// Why.
        code: RejectCode,
        /// Why, in words.
        reason: String,
    },
}

impl Default for Inbound {
    fn default() -> Self {
        Self::new()
    }
}

impl Inbound {
    /// A stream that has seen nothing yet.
    pub fn new() -> Self {
        Self {
            state: InState::AwaitOffer,
        }
    }

    /// Feeds one frame from the sender.
    pub fn handle(&mut self, frame: Frame) -> Result<InboundEvent, WireError> {
        let state = std::mem::replace(&mut self.state, InState::Closed);
        match (state, frame) {
            (InState::AwaitOffer, Frame::Offer(offer)) => {
                self.state = InState::Deciding(offer.clone());
                Ok(InboundEvent::Offered(offer))
            }
            (InState::Receiving { offer, next }, Frame::Data { offset, bytes }) => {
                let end = offset.checked_add(bytes.len() as u64);
                if offset != next || end.is_none_or(|e| e > offer.size) {
                    return Err(WireError::Unexpected(
                        "DATA not contiguous or past the offered size",
                    ));
                }
                let end = next + bytes.len() as u64;
                let complete = end == offer.size;
                self.state = if complete {
                    InState::Complete(offer)
                } else {
                    InState::Receiving { offer, next: end }
                };
                Ok(InboundEvent::Chunk {
                    offset,
                    bytes,
                    complete,
                })
            }
            (_, Frame::Reject { code, reason }) => Ok(InboundEvent::Rejected { code, reason }),
            (InState::AwaitOffer, _) => Err(WireError::Unexpected("the first frame must be OFFER")),
            _ => Err(WireError::Unexpected(
                "frame not allowed at this point of the transfer",
            )),
        }
    }

    /// Takes the offer, asking for the bytes from `resume_from` on; returns the ACCEPT to send.
    pub fn accept(&mut self, resume_from: u64) -> Result<Frame, WireError> {
        let state = std::mem::replace(&mut self.state, InState::Closed);
        let InState::Deciding(offer) = state else {
            return Err(WireError::Unexpected("ACCEPT without a pending OFFER"));
        };
        if resume_from > offer.size {
            return Err(WireError::Unexpected("resume offset past the offered size"));
        }
        self.state = if resume_from == offer.size {
            InState::Complete(offer)
        } else {
            InState::Receiving {
                offer,
                next: resume_from,
            }
        };
        Ok(Frame::Accept { resume_from })
    }

    /// Refuses at any point; returns the REJECT to send. The stream ends after it.
    pub fn reject(&mut self, code: RejectCode, reason: impl Into<String>) -> Frame {
        self.state = InState::Closed;
        Frame::Reject {
            code,
            reason: reason.into(),
        }
    }

    /// The offer being answered or received, to check the digest against once complete.
    pub fn offer(&self) -> Option<&Offer> {
        match &self.state {
            InState::Deciding(offer)
            | InState::Receiving { offer, .. }
            | InState::Complete(offer) => Some(offer),
            InState::AwaitOffer | InState::Closed => None,
        }
    }

    /// True once every byte has arrived: the node may verify, fsync and send STORED.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, InState::Complete(_))
    }
}

/// The sending side of one stream.
#[derive(Debug)]
pub struct Outbound {
    offer: Offer,
    state: OutState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    AwaitAnswer,
    Sending { next: u64 },
    AwaitStored,
    Done,
}

/// What an answer from the receiver means for the sender.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboundEvent {
    /// Send from this offset on (call [`Outbound::next_chunk`] until it says `None`).
    SendFrom(u64),
    /// Custody moved: keep the receipt, mark the hop done.
    Stored(Vec<u8>),
    /// Refused: fail the dispatch if `code.is_permanent()`, else retry later.
    Rejected {
        /// Why.
        code: RejectCode,
        /// Why, in words.
        reason: String,
    },
}

impl Outbound {
    /// Starts a transfer; returns the OFFER to send first.
    pub fn new(offer: Offer) -> (Self, Frame) {
        let frame = Frame::Offer(offer.clone());
        (
            Self {
                offer,
                state: OutState::AwaitAnswer,
            },
            frame,
        )
    }

    /// Feeds one frame from the receiver.
    pub fn handle(&mut self, frame: Frame) -> Result<OutboundEvent, WireError> {
        match (self.state, frame) {
            (OutState::AwaitAnswer, Frame::Accept { resume_from }) => {
                if resume_from > self.offer.size {
                    return Err(WireError::Unexpected("resume offset past the offered size"));
                }
                self.state = if resume_from == self.offer.size {
                    OutState::AwaitStored
                } else {
                    OutState::Sending { next: resume_from }
                };
                Ok(OutboundEvent::SendFrom(resume_from))
            }
            (OutState::AwaitStored, Frame::Stored { receipt }) => {
                self.state = OutState::Done;
                Ok(OutboundEvent::Stored(receipt))
            }
            (state, Frame::Reject { code, reason }) if state != OutState::Done => {
                self.state = OutState::Done;
                Ok(OutboundEvent::Rejected { code, reason })
            }
            _ => Err(WireError::Unexpected(
                "frame not allowed at this point of the transfer",
            )),
        }
    }

    /// The next range to send as DATA, `(offset, len)`, at most `max` (and [`MAX_CHUNK`]) bytes;
    /// `None` when everything has been sent (or nothing may be sent yet).
    pub fn next_chunk(&mut self, max: usize) -> Option<(u64, usize)> {
        let OutState::Sending { next } = self.state else {
            return None;
        };
        let remaining = self.offer.size - next;
        let len = (max.clamp(1, MAX_CHUNK) as u64).min(remaining) as usize;
        let after = next + len as u64;
        self.state = if after == self.offer.size {
            OutState::AwaitStored
        } else {
            OutState::Sending { next: after }
        };
        Some((next, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(size: u64) -> Offer {
        Offer {
            id: [1; 16],
            from: "000.00.00.G22".parse().unwrap(),
            to: "000.00.00.H41".parse().unwrap(),
            size,
            sealed_sha256: [2; 32],
            urgency: 0,
            expires: 0,
            kind: crate::wire::ObjectKind::Dispatch,
            hops: 0,
        }
    }

    /// Runs a whole exchange in memory, the receiver already holding `held` bytes.
    fn exchange(size: u64, held: u64, chunk: usize) -> (Vec<u8>, Vec<u8>) {
        let object: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut received = object[..held as usize].to_vec();
        let (mut out, offer_frame) = Outbound::new(offer(size));
        let mut inb = Inbound::new();
        let InboundEvent::Offered(o) = inb.handle(offer_frame).unwrap() else {
            panic!("expected an offer")
        };
        assert_eq!(o.size, size);
        let accept = inb.accept(held).unwrap();
        assert_eq!(out.handle(accept).unwrap(), OutboundEvent::SendFrom(held));
        while let Some((offset, len)) = out.next_chunk(chunk) {
            let bytes = object[offset as usize..offset as usize + len].to_vec();
            match inb.handle(Frame::Data { offset, bytes }).unwrap() {
                InboundEvent::Chunk { bytes, .. } => received.extend(bytes),
                other => panic!("{other:?}"),
            }
        }
        assert!(inb.is_complete());
        assert_eq!(inb.offer().map(|o| o.size), Some(size));
        let stored = out
            .handle(Frame::Stored {
                receipt: b"r".to_vec(),
            })
            .unwrap();
        assert_eq!(stored, OutboundEvent::Stored(b"r".to_vec()));
        (object, received)
    }

    #[test]
    fn fresh_and_resumed_transfers_deliver_every_byte_once() {
        for (size, held, chunk) in [
            (1, 0, 10),
            (10_000, 0, 999),
            (10_000, 4_321, 1000),
            (5, 5, 1),
        ] {
            let (sent, got) = exchange(size, held, chunk);
            assert_eq!(sent, got, "size {size} held {held}");
        }
    }

    #[test]
    fn out_of_order_frames_are_violations() {
        let mut inb = Inbound::new();
        let err = inb
            .handle(Frame::Data {
                offset: 0,
                bytes: vec![1],
            })
            .unwrap_err();
        assert_eq!(err.stream_code(), 0x14);

        let mut inb = Inbound::new();
        inb.handle(Frame::Offer(offer(10))).unwrap();
        assert!(
            inb.handle(Frame::Data {
                offset: 0,
                bytes: vec![1]
            })
            .is_err(),
            "DATA before ACCEPT"
        );

        for (offset, len) in [(1u64, 1usize), (0, 11), (u64::MAX, 1)] {
            let mut inb = Inbound::new();
            inb.handle(Frame::Offer(offer(10))).unwrap();
            inb.accept(0).unwrap();
            let frame = Frame::Data {
                offset,
                bytes: vec![0; len],
            };
            assert!(
                inb.handle(frame).is_err(),
                "gap or overrun at {offset}+{len}"
            );
        }
        let mut inb = Inbound::new();
        inb.handle(Frame::Offer(offer(10))).unwrap();
        assert!(inb.accept(11).is_err());

        let (mut out, _) = Outbound::new(offer(10));
        assert!(
            out.handle(Frame::Stored { receipt: vec![] }).is_err(),
            "STORED before the data"
        );
        assert!(out.handle(Frame::Accept { resume_from: 11 }).is_err());
    }

    #[test]
    fn rejects_end_the_exchange_with_their_reason() {
        let (mut out, _) = Outbound::new(offer(10));
        let ev = out
            .handle(Frame::Reject {
                code: RejectCode::NotForUs,
                reason: "no".into(),
            })
            .unwrap();
        assert!(matches!(
            ev,
            OutboundEvent::Rejected {
                code: RejectCode::NotForUs,
                ..
            }
        ));
        assert!(out.next_chunk(10).is_none());
        assert!(out.handle(Frame::Accept { resume_from: 0 }).is_err());
        let mut inb = Inbound::new();
        inb.handle(Frame::Offer(offer(10))).unwrap();
        let frame = inb.reject(RejectCode::DiskFull, "disk full");
        assert!(matches!(
            frame,
            Frame::Reject {
                code: RejectCode::DiskFull,
                ..
            }
        ));
        assert!(inb.accept(0).is_err());
    }
}
