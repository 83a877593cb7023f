//! The status workflow of Decree 30/2020 (`docs/status-notices.md`): where a copy stands, worked
//! out from the notices about it, and which notice may come next. Pure — the notices in, the
//! answer out — so that the recipient's node, the sender's view and the clients all read a copy
//! the same way, and every transition is tested here.

use std::fmt;

use crate::store::NoticeSeen;

/// Where a copy stands at its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Opened, numbered, notice 01 sent.
    Arrived,
    /// 03: taken into the register.
    Registered,
    /// 04: handed to someone to deal with.
    Assigned,
    /// 05: being dealt with.
    InProgress,
    /// 06: dealt with.
    Done,
    /// 02: refused, with a reason.
    Refused,
    /// 15: given back to its sender; its sealed object destroyed.
    Recalled,
}

impl State {
    /// The name the API and the clients use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arrived => "arrived",
            Self::Registered => "registered",
            Self::Assigned => "assigned",
            Self::InProgress => "in_progress",
            Self::Done => "done",
            Self::Refused => "refused",
            Self::Recalled => "recalled",
        }
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Refused | Self::Recalled)
    }
}

/// A recall asked by the sender (13), and its answer once given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recall {
    /// Why the sender asks.
    pub reason: String,
    /// When it asked (Unix seconds).
    pub time: i64,
    /// `15` (agreed) or `16` (refused), once answered.
    pub answer: Option<&'static str>,
}

/// A copy's workflow, as its notices say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Where it stands.
    pub state: State,
    /// To whom it was last assigned (04).
    pub assigned_to: Option<String>,
    /// The latest recall, if one was asked.
    pub recall: Option<Recall>,
}

impl Flow {
    /// The workflow of a copy with these notices (in any order: they are taken by time, a later
    /// one winning, the list's order breaking ties). A copy with none has arrived.
    pub fn of(notices: &[NoticeSeen]) -> Self {
        let mut ordered: Vec<&NoticeSeen> = notices.iter().collect();
        ordered.sort_by_key(|n| n.time);
        let mut flow = Self {
            state: State::Arrived,
            assigned_to: None,
            recall: None,
        };
        for notice in ordered {
            flow.apply(notice);
        }
        flow
    }

    fn apply(&mut self, notice: &NoticeSeen) {
        let reason = notice.reason.clone().unwrap_or_default();
        match notice.status.as_str() {
            "02" => self.state = State::Refused,
            "03" => self.state = State::Registered,
            "04" => {
                self.state = State::Assigned;
                self.assigned_to = Some(reason);
            }
            "05" => self.state = State::InProgress,
            "06" => self.state = State::Done,
            "13" => {
                self.recall = Some(Recall {
                    reason,
                    time: notice.time,
                    answer: None,
                })
            }
            code @ ("15" | "16") => {
                if let Some(recall) = &mut self.recall {
                    recall.answer = Some(if code == "15" { "15" } else { "16" });
                }
                if code == "15" {
                    self.state = State::Recalled;
                }
            }
            _ => {}
        }
    }

    /// Whether a recall waits for the recipient's answer.
    pub fn recall_pending(&self) -> bool {
        self.recall.as_ref().is_some_and(|r| r.answer.is_none()) && !self.state.is_final()
    }

    /// The state for a list: the sender also reads a pending or refused recall there.
    pub fn summary(&self, outgoing: bool) -> &'static str {
        let answer = self.recall.as_ref().and_then(|r| r.answer);
        if outgoing && self.recall_pending() {
            "recall_pending"
        } else if outgoing && answer == Some("16") && !self.state.is_final() {
            "recall_refused"
        } else {
            self.state.name()
        }
    }

    /// Whether the recipient's clerk may send notice `code` (02-06) now.
    pub fn may_notify(&self, code: &str) -> Result<(), NotAllowed> {
        use State::*;
        let allowed: &[&str] = match self.state {
            Arrived => &["03", "02"],
            Registered => &["04", "02"],
            Assigned => &["04", "05", "06"],
            InProgress => &["04", "06"],
            Done | Refused | Recalled => &[],
        };
        if allowed.contains(&code) {
            Ok(())
        } else {
            Err(NotAllowed {
                state: self.state.name(),
                code: code.to_owned(),
                why: if self.state.is_final() {
                    "nothing more is sent about it"
                } else {
                    "not the next step"
                },
            })
        }
    }

    /// The notices the recipient's clerk may send now, for a client to offer.
    pub fn next_codes(&self) -> Vec<&'static str> {
        ["03", "04", "05", "06", "02"]
            .into_iter()
            .filter(|c| self.may_notify(c).is_ok())
            .collect()
    }

    /// Whether the sender may ask for the copy back (13): not once it is refused or recalled,
    /// nor while an earlier recall waits.
    pub fn may_recall(&self) -> Result<(), NotAllowed> {
        if matches!(self.state, State::Refused | State::Recalled) || self.recall_pending() {
            return Err(NotAllowed {
                state: if self.recall_pending() {
                    "recall_pending"
                } else {
                    self.state.name()
                },
                code: "13".into(),
                why: "a recall cannot be asked now",
            });
        }
        Ok(())
    }

    /// Whether the recipient's clerk may answer a recall (15 or 16): only while one waits.
    pub fn may_answer(&self, code: &str) -> Result<(), NotAllowed> {
        if self.recall_pending() {
            return Ok(());
        }
        Err(NotAllowed {
            state: self.state.name(),
            code: code.to_owned(),
            why: "no recall waits for an answer",
        })
    }
}

/// A notice the workflow does not allow now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAllowed {
    /// The copy's state.
    pub state: &'static str,
    /// The notice asked for.
    pub code: String,
    /// Why, in words.
    pub why: &'static str,
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "notice {} is not allowed: the copy is {} ({})",
            self.code, self.state, self.why
        )
    }
}

impl std::error::Error for NotAllowed {}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(status: &str, time: i64, reason: Option<&str>) -> NoticeSeen {
        NoticeSeen {
            status: status.into(),
            by: "000.00.00.H41".parse().unwrap(),
            time,
            reason: reason.map(Into::into),
        }
    }

    fn flow(codes: &[&str]) -> Flow {
        let notices: Vec<NoticeSeen> = codes
            .iter()
            .enumerate()
            .map(|(t, c)| notice(c, t as i64, Some("x")))
            .collect();
        Flow::of(&notices)
    }

    #[test]
    fn every_transition_is_allowed_or_refused_as_the_table_says() {
        let table: [(&[&str], State, &[&str]); 8] = [
            (&[], State::Arrived, &["03", "02"]),
            (&["01"], State::Arrived, &["03", "02"]),
            (&["01", "03"], State::Registered, &["04", "02"]),
            (&["01", "03", "04"], State::Assigned, &["04", "05", "06"]),
            (&["01", "03", "04", "05"], State::InProgress, &["04", "06"]),
            (&["01", "03", "04", "05", "06"], State::Done, &[]),
            (&["01", "02"], State::Refused, &[]),
            (&["01", "03", "13", "15"], State::Recalled, &[]),
        ];
        for (notices, state, allowed) in table {
            let f = flow(notices);
            assert_eq!(f.state, state, "{notices:?}");
            for code in ["02", "03", "04", "05", "06"] {
                let verdict = f.may_notify(code);
                assert_eq!(
                    verdict.is_ok(),
                    allowed.contains(&code),
                    "{notices:?} then {code}: {verdict:?}"
                );
            }
            assert_eq!(f.next_codes(), {
                let mut v: Vec<&str> = ["03", "04", "05", "06", "02"]
                    .into_iter()
                    .filter(|c| allowed.contains(c))
                    .collect();
                v.dedup();
                v
            });
        }
        let refused = flow(&["01"]).may_notify("05").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "notice 05 is not allowed: the copy is arrived (not the next step)"
        );
        let done = flow(&["01", "03", "04", "06"])
            .may_notify("05")
            .unwrap_err();
        assert!(done.to_string().contains("the copy is done (nothing more"));
    }

    #[test]
    fn assignment_and_recall_are_followed_and_order_is_by_time() {
        let notices = vec![
            notice("04", 30, Some("Trần Thị B")),
            notice("01", 10, None),
            notice("03", 20, None),
            notice("04", 25, Some("Nguyễn Văn A")),
        ];
        let f = Flow::of(&notices);
        assert_eq!(f.state, State::Assigned);
        assert_eq!(
            f.assigned_to.as_deref(),
            Some("Trần Thị B"),
            "the latest by time"
        );

        // A recall waits; then it is refused (the copy keeps its state) or agreed (recalled).
        let mut asked = notices.clone();
        asked.push(notice("13", 40, Some("gửi nhầm")));
        let f = Flow::of(&asked);
        assert!(f.recall_pending());
        assert_eq!(
            (f.summary(true), f.summary(false)),
            ("recall_pending", "assigned")
        );
        assert!(f.may_recall().is_err(), "one recall at a time");
        assert!(f.may_answer("15").is_ok() && f.may_notify("05").is_ok());
        let mut refused = asked.clone();
        refused.push(notice("16", 50, Some("đã xử lý")));
        let f = Flow::of(&refused);
        assert!(!f.recall_pending() && f.may_answer("15").is_err());
        assert_eq!(
            (f.state, f.summary(true)),
            (State::Assigned, "recall_refused")
        );
        assert!(f.may_recall().is_ok(), "asked again");
        let mut agreed = asked;
        agreed.push(notice("15", 50, None));
        let f = Flow::of(&agreed);
        assert_eq!((f.state, f.summary(true)), (State::Recalled, "recalled"));
        assert_eq!(f.recall.unwrap().answer, Some("15"));
        assert!(Flow::of(&[notice("02", 1, Some("sai"))])
            .may_recall()
            .is_err());
        assert!(flow(&["01"]).may_answer("16").is_err(), "nothing to answer");
    }
}
