//! The API's answers as the TUI reads them (`docs/local-api.md`, "Dispatch view"), and the rules
//! it applies to them: which notices a copy may send next (`docs/status-notices.md`), how an
//! outgoing dispatch's copies group into one line.

use serde::Deserialize;
use serde_json::Value;

/// One copy as `GET /v1/inbox`, `/v1/outbox` and `/v1/dispatches/{id}` describe it. Every field
/// the list does not always carry is optional: a node without the workflow yet answers without
/// `workflow`, `recall` or `due_date`, and the TUI still shows the rest.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct CopyView {
    pub(crate) id: String,
    pub(crate) direction: String,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) message_id: Option<String>,
    pub(crate) number: Option<String>,
    pub(crate) notation: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) urgency: String,
    pub(crate) classification: Option<String>,
    pub(crate) incoming_number: Option<String>,
    pub(crate) created: u64,
    pub(crate) attempts: u64,
    pub(crate) delivered: bool,
    pub(crate) held_by: Option<String>,
    pub(crate) notices: Vec<Notice>,
    pub(crate) workflow: Option<String>,
    pub(crate) assigned_to: Option<String>,
    pub(crate) recall: Option<Recall>,
    pub(crate) due_date: Option<String>,
    pub(crate) overdue: bool,
    pub(crate) business: Option<String>,
    /// The full dispatch header (`GET /v1/dispatches/{id}` only).
    pub(crate) header: Option<Value>,
    /// This agency's ledger entries about the copy (`GET /v1/dispatches/{id}` only).
    pub(crate) ledger: Vec<LedgerRow>,
}

/// One ledger entry in a copy's detail.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct LedgerRow {
    /// Its position in the agency's ledger.
    pub(crate) index: u64,
    /// RFC 3339, UTC.
    pub(crate) time: String,
    /// `received`, `registered`, `notice`, `fetched`, …
    pub(crate) kind: String,
    /// Who: `node`, `uid:N`, `peer:CODE`.
    pub(crate) actor: String,
}

/// A status notice in a copy's history.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Notice {
    pub(crate) status: String,
    pub(crate) by: String,
    pub(crate) time: u64,
    pub(crate) reason: Option<String>,
}

/// A recall asked of a copy, answered or not.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Recall {
    pub(crate) reason: String,
    pub(crate) time: u64,
    pub(crate) answer: Option<String>,
}

impl CopyView {
    /// Whether this is a copy this agency received.
    pub(crate) fn incoming(&self) -> bool {
        self.direction == "incoming"
    }

    /// The workflow state the copy is in: the node's `workflow`, or for a node that does not
    /// report one yet, what its `status` implies (a registered incoming copy has sent `01`:
    /// `arrived`).
    pub(crate) fn workflow(&self) -> Option<&str> {
        match self.workflow.as_deref() {
            Some(w) => Some(w),
            None if self.incoming() && self.status == "registered" => Some("arrived"),
            None => None,
        }
    }

    /// What the lists show as its state: the workflow once there is one, else the status.
    pub(crate) fn state(&self) -> &str {
        self.workflow().unwrap_or(&self.status)
    }

    /// The notices the recipient's clerk may send from this copy's state, in the order the keys
    /// are offered (`docs/status-notices.md`, the workflow table); none for an outgoing copy.
    pub(crate) fn allowed_notices(&self) -> &'static [NoticeCode] {
        use NoticeCode::*;
        if !self.incoming() {
            return &[];
        }
        match self.workflow() {
            Some("arrived") => &[Registered, Refused],
            Some("registered") => &[Assigned, Refused],
            Some("assigned") => &[Assigned, InProgress, Done],
            Some("in_progress") => &[Assigned, Done],
            _ => &[],
        }
    }

    /// A recall waits for this agency's answer (incoming) or for the recipient's (outgoing).
    pub(crate) fn recall_pending(&self) -> bool {
        self.recall.as_ref().is_some_and(|r| r.answer.is_none())
    }

    /// The sender's clerk may ask this copy back: it is outgoing, neither failed, refused nor
    /// recalled, and no earlier recall waits for an answer.
    pub(crate) fn may_recall(&self) -> bool {
        !self.incoming()
            && self.status != "failed"
            && !matches!(self.workflow.as_deref(), Some("refused" | "recalled"))
            && !self.recall_pending()
    }

    /// "số/ký hiệu" as the lists show it.
    pub(crate) fn code(&self) -> String {
        match (&self.number, &self.notation) {
            (Some(n), Some(k)) => format!("{n}/{k}"),
            (Some(n), None) => n.clone(),
            _ => String::new(),
        }
    }

    /// Hỏa tốc (with or without a set time): the rows that must stand out first.
    pub(crate) fn flash(&self) -> bool {
        self.urgency.starts_with("hoa-toc")
    }
}

/// The notices a recipient's clerk sends (`POST /v1/dispatches/{id}/notices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoticeCode {
    /// `03` đã tiếp nhận.
    Registered,
    /// `04` phân công, with whom to.
    Assigned,
    /// `05` đang xử lý.
    InProgress,
    /// `06` hoàn thành.
    Done,
    /// `02` từ chối tiếp nhận, with a reason.
    Refused,
}

impl NoticeCode {
    /// The edXML status code sent.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Registered => "03",
            Self::Assigned => "04",
            Self::InProgress => "05",
            Self::Done => "06",
            Self::Refused => "02",
        }
    }

    /// The key that sends it from the detail view.
    pub(crate) fn key(self) -> char {
        match self {
            Self::Registered => 'r',
            Self::Assigned => 'a',
            Self::InProgress => 'p',
            Self::Done => 'd',
            Self::Refused => 'x',
        }
    }

    /// [`Self::key`] as the key line writes it.
    pub(crate) fn key_text(self) -> &'static str {
        match self {
            Self::Registered => "r",
            Self::Assigned => "a",
            Self::InProgress => "p",
            Self::Done => "d",
            Self::Refused => "x",
        }
    }

    /// Its name on the key line.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Registered => "register 03",
            Self::Assigned => "assign 04",
            Self::InProgress => "processing 05",
            Self::Done => "done 06",
            Self::Refused => "refuse 02",
        }
    }
}

/// A status code's meaning, for the notices history.
pub(crate) fn notice_name(code: &str) -> &'static str {
    match code {
        "01" => "đã đến",
        "02" => "từ chối tiếp nhận",
        "03" => "đã tiếp nhận",
        "04" => "phân công",
        "05" => "đang xử lý",
        "06" => "hoàn thành",
        "13" => "lấy lại",
        "15" => "đồng ý lấy lại",
        "16" => "từ chối lấy lại",
        _ => "",
    }
}

/// Urgency as a short mark for the lists.
pub(crate) fn urgency_mark(urgency: &str) -> &'static str {
    match urgency {
        "khan" => "K",
        "thuong-khan" => "TK",
        "hoa-toc" => "HT",
        "hoa-toc-hen-gio" => "HG",
        _ => "",
    }
}

/// Classification as a short mark for the lists.
pub(crate) fn class_mark(classification: Option<&str>) -> &'static str {
    match classification {
        Some("mat") => "M",
        Some("toi-mat") => "TM",
        Some("tuyet-mat") => "TTM",
        _ => "",
    }
}

/// One line of a list: a copy (inbox, or a dispatch to one agency), or the copies of one outgoing
/// dispatch to several agencies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) copies: Vec<CopyView>,
}

impl Line {
    /// The copy whose fields the line shows (all copies share the header's).
    pub(crate) fn first(&self) -> &CopyView {
        // A line is never empty: `group` makes each from a copy.
        &self.copies[0]
    }

    /// The copies counted by state, in the order each state first appears: "2 done·1 sent".
    pub(crate) fn counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for copy in &self.copies {
            let state = copy.state();
            match counts.iter_mut().find(|(s, _)| s == state) {
                Some((_, n)) => *n += 1,
                None => counts.push((state.to_owned(), 1)),
            }
        }
        counts
    }

    /// Its due date, and whether any copy is overdue.
    pub(crate) fn overdue(&self) -> bool {
        self.copies.iter().any(|c| c.overdue)
    }
}

/// The rows of a list as lines: the inbox one per copy; the outbox one per dispatch (message id),
/// in the order each first appears.
pub(crate) fn group(rows: Vec<CopyView>, inbox: bool) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for row in rows {
        let same =
            |l: &Line| !inbox && row.message_id.is_some() && l.first().message_id == row.message_id;
        match lines.iter_mut().find(|l| same(l)) {
            Some(line) => line.copies.push(row),
            None => lines.push(Line { copies: vec![row] }),
        }
    }
    lines
}

/// An agency of the directory (`GET /v1/directory`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Agency {
    pub(crate) organ_code: String,
    pub(crate) name: String,
}

/// A tenant of the node (`GET /v1/tenants`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Tenant {
    pub(crate) organ_code: String,
    pub(crate) name: String,
    pub(crate) own: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(status: &str, workflow: Option<&str>) -> CopyView {
        CopyView {
            direction: "incoming".into(),
            status: status.into(),
            workflow: workflow.map(str::to_owned),
            ..CopyView::default()
        }
    }

    #[test]
    fn each_state_offers_exactly_the_notices_the_state_machine_allows() {
        use NoticeCode::*;
        let codes =
            |c: &CopyView| -> Vec<&str> { c.allowed_notices().iter().map(|n| n.code()).collect() };
        assert_eq!(
            codes(&incoming("registered", Some("arrived"))),
            ["03", "02"]
        );
        // A node without the workflow yet: a registered copy has only sent 01.
        assert_eq!(codes(&incoming("registered", None)), ["03", "02"]);
        assert_eq!(
            codes(&incoming("registered", Some("registered"))),
            ["04", "02"]
        );
        assert_eq!(
            codes(&incoming("registered", Some("assigned"))),
            ["04", "05", "06"]
        );
        assert_eq!(
            codes(&incoming("registered", Some("in_progress"))),
            ["04", "06"]
        );
        for done in ["done", "refused", "recalled"] {
            assert!(
                codes(&incoming("registered", Some(done))).is_empty(),
                "{done}"
            );
        }
        for status in ["received", "refused", "kept_aside"] {
            assert!(codes(&incoming(status, None)).is_empty(), "{status}");
        }
        let outgoing = CopyView {
            direction: "outgoing".into(),
            status: "delivered".into(),
            ..CopyView::default()
        };
        assert!(outgoing.allowed_notices().is_empty());
        assert_eq!(Assigned.key(), 'a');
    }

    #[test]
    fn a_recall_is_offered_only_when_the_state_allows_it() {
        let mut c = CopyView {
            direction: "outgoing".into(),
            status: "delivered".into(),
            ..CopyView::default()
        };
        assert!(c.may_recall());
        c.recall = Some(Recall {
            reason: "nhầm".into(),
            time: 1,
            answer: None,
        });
        assert!(c.recall_pending() && !c.may_recall());
        c.recall = Some(Recall {
            reason: "nhầm".into(),
            time: 1,
            answer: Some("16".into()),
        });
        c.workflow = Some("recall_refused".into());
        assert!(c.may_recall());
        c.workflow = Some("recalled".into());
        assert!(!c.may_recall());
        c.workflow = None;
        c.status = "failed".into();
        assert!(!c.may_recall());
        assert!(!incoming("registered", None).may_recall());
    }

    #[test]
    fn the_outbox_groups_copies_of_one_dispatch_and_the_inbox_does_not() {
        let copy = |id: &str, mid: &str, status: &str, workflow: Option<&str>| CopyView {
            id: id.into(),
            direction: "outgoing".into(),
            message_id: Some(mid.into()),
            status: status.into(),
            workflow: workflow.map(str::to_owned),
            ..CopyView::default()
        };
        let rows = vec![
            copy("a1", "m1", "delivered", Some("done")),
            copy("b1", "m2", "queued", None),
            copy("a2", "m1", "sent", None),
            copy("a3", "m1", "delivered", Some("done")),
        ];
        let lines = group(rows.clone(), false);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].copies.len(), 3);
        assert_eq!(
            lines[0].counts(),
            [("done".to_owned(), 2), ("sent".to_owned(), 1)]
        );
        assert_eq!(lines[1].first().id, "b1");
        assert_eq!(group(rows, true).len(), 4);
    }
}
