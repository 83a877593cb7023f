//! The TUI's state and what it does with each event, with no terminal, socket or clock of its own
//! (the quinn-proto shape, STYLE.md): [`App::handle`] takes a key, an API answer, a live event or
//! a tick and returns the [`Command`]s for the driver to carry out; the driver feeds the answers
//! back as events. Everything a clerk can do is therefore testable without a daemon.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde_json::{json, Value};
use vdx_protocol::OrganCode;

use super::model::{group, Agency, CopyView, Line, NoticeCode, Tenant};

/// Without live events, the lists are fetched again every this many ticks (seconds).
pub(crate) const POLL_TICKS: u32 = 3;

/// The two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    /// Dispatches received.
    Inbox,
    /// Dispatches sent.
    Outbox,
}

impl Tab {
    fn index(self) -> usize {
        match self {
            Self::Inbox => 0,
            Self::Outbox => 1,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Inbox => Self::Outbox,
            Self::Outbox => Self::Inbox,
        }
    }
}

/// What the event loop feeds the app.
#[derive(Debug)]
pub(crate) enum Event {
    /// A key pressed.
    Key(KeyEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// A second passed (polling while live events are not served).
    Tick,
    /// The API answered a command; `generation` is the tenant choice it was made under.
    Answer {
        generation: u64,
        answer: Box<Answer>,
    },
    /// The live subscription (`GET /v1/events`) of tenant choice `generation`.
    Live { generation: u64, live: Live },
}

/// The API's answer to one [`Command`]; errors are the API's message, shown on the status line.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `GET /v1/health`: the agency's code and name.
    Health(Result<(String, String), String>),
    /// A page of a list, and how many match in all when the node says (`x-total-count`).
    List {
        tab: Tab,
        offset: usize,
        limit: usize,
        q: String,
        result: Result<(Vec<CopyView>, Option<usize>), String>,
    },
    /// One copy with its header.
    Detail {
        id: String,
        result: Result<CopyView, String>,
    },
    /// Agencies matching a search of the send form.
    Directory {
        q: String,
        result: Result<Vec<Agency>, String>,
    },
    /// The caller's tenants.
    Tenants(Result<Vec<Tenant>, String>),
    /// A submitted dispatch: its message id and number of copies.
    Sent(Result<(String, usize), String>),
    /// A notice, recall or recall answer: `what` was done to copy `id`, its view after.
    Acted {
        id: String,
        what: String,
        result: Result<CopyView, String>,
    },
    /// A dispatch's files written into a directory: how many.
    Fetched {
        id: String,
        dir: PathBuf,
        result: Result<usize, String>,
    },
}

/// The state of the live subscription.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Live {
    /// The stream is open.
    Up,
    /// It is not (the endpoint missing, the daemon down): retried quietly.
    Down(String),
    /// A ledger entry about a dispatch (`id`, when it names one).
    Entry { index: u64, id: Option<String> },
}

/// What the driver is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// `GET /v1/health`.
    Health,
    /// `GET /v1/inbox|outbox?limit&offset&q`.
    List {
        tab: Tab,
        offset: usize,
        limit: usize,
        q: String,
    },
    /// `GET /v1/dispatches/{id}`.
    Detail { id: String },
    /// `GET /v1/directory?q=`.
    Directory { q: String },
    /// `GET /v1/tenants`.
    Tenants,
    /// Act for `code` (or the caller's only agency) from now on, and watch its events.
    SetTenant {
        code: Option<String>,
        generation: u64,
    },
    /// Upload `files` and submit `request` (`cmd_mail::submit`).
    Send { request: Value, files: Vec<PathBuf> },
    /// `POST /v1/dispatches/{id}/notices`.
    Notice {
        id: String,
        code: &'static str,
        to: Option<String>,
        reason: Option<String>,
    },
    /// `POST /v1/dispatches/{id}/recall`.
    Recall { id: String, reason: String },
    /// `POST /v1/dispatches/{id}/recall-answer`.
    RecallAnswer {
        id: String,
        agree: bool,
        reason: Option<String>,
    },
    /// Write the files of `id` into `dir` (`cmd_mail::fetch_into`).
    Fetch { id: String, dir: PathBuf },
}

/// One list's page and cursor.
#[derive(Debug, Default)]
pub(crate) struct List {
    pub(crate) lines: Vec<Line>,
    pub(crate) selected: usize,
    pub(crate) offset: usize,
    pub(crate) total: usize,
    pub(crate) query: String,
    /// A request for it is under way.
    pub(crate) loading: bool,
    /// Something changed while it was loading: load again once it answers.
    stale: bool,
    pub(crate) loaded: bool,
}

/// One dispatch opened: its copies (one, or an outgoing dispatch's every copy), its header.
#[derive(Debug)]
pub(crate) struct Detail {
    pub(crate) copies: Vec<CopyView>,
    /// The copy the actions apply to.
    pub(crate) selected: usize,
    pub(crate) header: Option<Value>,
    pub(crate) scroll: u16,
}

impl Detail {
    /// The copy the actions apply to.
    pub(crate) fn copy(&self) -> Option<&CopyView> {
        self.copies.get(self.selected)
    }
}

/// The send form's fields, in the order Tab visits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    To,
    Subject,
    Number,
    Notation,
    Urgency,
    Classification,
    Files,
    Due,
}

const FIELDS: [Field; 8] = [
    Field::To,
    Field::Subject,
    Field::Number,
    Field::Notation,
    Field::Urgency,
    Field::Classification,
    Field::Files,
    Field::Due,
];

/// The urgencies, as the API names them (`docs/local-api.md`).
pub(crate) const URGENCIES: [&str; 5] = [
    "thuong",
    "khan",
    "thuong-khan",
    "hoa-toc",
    "hoa-toc-hen-gio",
];
/// The classifications, as the API names them.
pub(crate) const CLASSIFICATIONS: [&str; 4] = ["none", "mat", "toi-mat", "tuyet-mat"];

/// The send form.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pub(crate) field: usize,
    pub(crate) to: Vec<Agency>,
    pub(crate) to_query: String,
    pub(crate) matches: Vec<Agency>,
    pub(crate) pick: usize,
    pub(crate) subject: String,
    pub(crate) number: String,
    pub(crate) notation: String,
    pub(crate) urgency: usize,
    pub(crate) classification: usize,
    pub(crate) files: Vec<String>,
    pub(crate) file_input: String,
    pub(crate) due: String,
    pub(crate) submitting: bool,
}

/// Why the send form cannot be submitted yet: each the rule the node would apply, told before
/// any file is uploaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormError {
    #[error("choose at least one recipient")]
    NoRecipient,
    #[error("{0:?} is neither chosen from the directory nor an organ code")]
    UnknownRecipient(String),
    #[error("a subject (trích yếu) is required")]
    NoSubject,
    #[error("a tuyệt mật dispatch carries no subject: clear it")]
    SubjectNotAllowed,
    #[error("the {0} is required")]
    Missing(&'static str),
    #[error("the {0} may not contain {1:?}")]
    BadChar(&'static str, char),
    #[error("the {0} is longer than {1} characters")]
    TooLong(&'static str, usize),
    #[error("add at least one file")]
    NoFiles,
    #[error("the due date {0:?} is not a date written YYYY-MM-DD")]
    BadDueDate(String),
}

impl Form {
    /// The field being edited.
    pub(crate) fn field(&self) -> Field {
        FIELDS[self.field % FIELDS.len()]
    }

    /// The request `vdx send` would make of this form, and its files; or what is wrong with it.
    /// A recipient code or a file path typed but not yet added counts.
    pub(crate) fn request(&self) -> Result<(Value, Vec<PathBuf>), FormError> {
        let mut to: Vec<String> = self.to.iter().map(|a| a.organ_code.clone()).collect();
        let typed = self.to_query.trim();
        if !typed.is_empty() {
            if typed.parse::<OrganCode>().is_err() {
                return Err(FormError::UnknownRecipient(typed.to_owned()));
            }
            to.push(typed.to_owned());
        }
        if to.is_empty() {
            return Err(FormError::NoRecipient);
        }
        let classification = CLASSIFICATIONS[self.classification % CLASSIFICATIONS.len()];
        let subject = self.subject.trim();
        let subject = match (classification, subject.is_empty()) {
            ("tuyet-mat", true) => None,
            ("tuyet-mat", false) => return Err(FormError::SubjectNotAllowed),
            (_, true) => return Err(FormError::NoSubject),
            (_, false) if subject.chars().count() > 2000 => {
                return Err(FormError::TooLong("subject", 2000))
            }
            (_, false) => Some(subject),
        };
        let number = code_part("number", &self.number, &[',', '/'])?;
        let notation = code_part("notation", &self.notation, &[','])?;
        let mut files: Vec<PathBuf> = self.files.iter().map(PathBuf::from).collect();
        if !self.file_input.trim().is_empty() {
            files.push(PathBuf::from(self.file_input.trim()));
        }
        if files.is_empty() {
            return Err(FormError::NoFiles);
        }
        let mut request = json!({
            "to": to,
            "subject": subject,
            "number": number,
            "notation": notation,
            "urgency": URGENCIES[self.urgency % URGENCIES.len()],
            "classification": classification,
        });
        let due = self.due.trim();
        if !due.is_empty() {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if due.len() != 10 || time::Date::parse(due, format).is_err() {
                return Err(FormError::BadDueDate(due.to_owned()));
            }
            request["due_date"] = due.into();
        }
        Ok((request, files))
    }
}

/// `number` or `notation` checked as the header's rules say: present, at most 100 characters,
/// none of `forbidden`.
fn code_part<'a>(
    name: &'static str,
    text: &'a str,
    forbidden: &[char],
) -> Result<&'a str, FormError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FormError::Missing(name));
    }
    if let Some(c) = text.chars().find(|c| forbidden.contains(c)) {
        return Err(FormError::BadChar(name, c));
    }
    if text.chars().count() > 100 {
        return Err(FormError::TooLong(name, 100));
    }
    Ok(text)
}

/// A one-line question on the status line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prompt {
    pub(crate) ask: Ask,
    pub(crate) input: String,
}

/// What a prompt asks for, and what its answer is for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ask {
    /// The search of the current list (`q`).
    Search,
    /// Whom copy `id` is assigned to (notice 04).
    AssignTo(String),
    /// Why copy `id` is refused (notice 02).
    RefuseReason(String),
    /// Why outgoing copy `id` is asked back (13).
    RecallReason(String),
    /// Why the recall of `id` is refused (16).
    RecallRefuseReason(String),
    /// Where the files of `id` go.
    FetchDir(String),
}

impl Ask {
    /// The question as shown.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Search => "search (number, notation, subject)",
            Self::AssignTo(_) => "assign to (04)",
            Self::RefuseReason(_) => "reason for refusing (02)",
            Self::RecallReason(_) => "reason for the recall (13)",
            Self::RecallRefuseReason(_) => "reason for refusing the recall (16)",
            Self::FetchDir(_) => "fetch the files into directory",
        }
    }
}

/// The screen shown.
#[derive(Debug)]
pub(crate) enum Screen {
    /// The inbox or outbox.
    List,
    /// One dispatch.
    Detail(Detail),
    /// The send form.
    Form(Form),
    /// The tenant picker: the tenants once known, the one under the cursor.
    Tenants(Option<Vec<Tenant>>, usize),
}

/// The whole state of the TUI.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) tab: Tab,
    pub(crate) screen: Screen,
    pub(crate) lists: [List; 2],
    pub(crate) prompt: Option<Prompt>,
    /// The last message: text, and whether it is an error.
    pub(crate) status: Option<(String, bool)>,
    /// The tenant chosen (`--tenant`, or the picker).
    pub(crate) tenant: Option<String>,
    /// The agency the node reports (`GET /v1/health`): code and name.
    pub(crate) agency: Option<(String, String)>,
    /// Whether live events arrive; why not, when not.
    pub(crate) live: Live,
    /// The terminal's size (columns, rows).
    pub(crate) size: (u16, u16),
    /// Bumped at each change of tenant: answers and events of an earlier choice are dropped.
    pub(crate) generation: u64,
    /// The last live event seen.
    pub(crate) last_event: Option<u64>,
    pub(crate) quit: bool,
    ticks: u32,
}

impl App {
    /// A fresh TUI for `tenant` on a terminal of `size`, and the commands to start it with.
    pub(crate) fn new(tenant: Option<String>, size: (u16, u16)) -> (Self, Vec<Command>) {
        let mut app = Self {
            tab: Tab::Inbox,
            screen: Screen::List,
            lists: Default::default(),
            prompt: None,
            status: None,
            tenant,
            agency: None,
            live: Live::Down("connecting".into()),
            size,
            generation: 0,
            last_event: None,
            quit: false,
            ticks: 0,
        };
        let mut commands = vec![
            Command::Health,
            Command::SetTenant {
                code: app.tenant.clone(),
                generation: 0,
            },
        ];
        commands.extend(app.load(Tab::Inbox));
        (app, commands)
    }

    /// The rows a list page holds: the terminal less the title, column, status and key lines.
    pub(crate) fn page_size(&self) -> usize {
        usize::from(self.size.1.saturating_sub(4)).max(1)
    }

    /// The list of `tab`.
    pub(crate) fn list(&self, tab: Tab) -> &List {
        &self.lists[tab.index()]
    }

    fn list_mut(&mut self, tab: Tab) -> &mut List {
        &mut self.lists[tab.index()]
    }

    /// Loads `tab`'s page again, unless a load is under way (then once it answers).
    fn load(&mut self, tab: Tab) -> Option<Command> {
        let limit = self.page_size();
        let list = self.list_mut(tab);
        if list.loading {
            list.stale = true;
            return None;
        }
        list.loading = true;
        Some(Command::List {
            tab,
            offset: list.offset,
            limit,
            q: list.query.clone(),
        })
    }

    fn say(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), false));
    }

    fn fail(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), true));
    }

    /// Feeds one event in; returns what the driver must do.
    pub(crate) fn handle(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
            Event::Key(_) => vec![],
            Event::Resize(w, h) => {
                let before = self.page_size();
                self.size = (w, h);
                if self.page_size() != before {
                    self.load(self.tab).into_iter().collect()
                } else {
                    vec![]
                }
            }
            Event::Tick => self.tick(),
            Event::Answer { generation, answer } => {
                // The tenant list is the host's, the same whichever tenant is chosen.
                if generation != self.generation && !matches!(*answer, Answer::Tenants(_)) {
                    return vec![];
                }
                self.answer(*answer)
            }
            Event::Live { generation, live } if generation == self.generation => self.live(live),
            Event::Live { .. } => vec![],
        }
    }

    fn tick(&mut self) -> Vec<Command> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.live == Live::Up || !self.ticks.is_multiple_of(POLL_TICKS) {
            return vec![];
        }
        // No live events: poll what is on screen.
        let mut commands: Vec<Command> = self.load(self.tab).into_iter().collect();
        if let Screen::Detail(detail) = &self.screen {
            if let Some(copy) = detail.copy() {
                commands.push(Command::Detail {
                    id: copy.id.clone(),
                });
            }
        }
        commands
    }

    fn live(&mut self, live: Live) -> Vec<Command> {
        match live {
            Live::Entry { index, id } => {
                self.last_event = Some(index);
                self.live = Live::Up;
                self.list_mut(self.tab.other()).loaded = false;
                let mut commands: Vec<Command> = self.load(self.tab).into_iter().collect();
                if let (Screen::Detail(detail), Some(id)) = (&self.screen, id) {
                    if detail.copies.iter().any(|c| c.id == id) {
                        commands.push(Command::Detail { id });
                    }
                }
                commands
            }
            Live::Up => {
                let was = std::mem::replace(&mut self.live, Live::Up);
                // What happened before the stream opened came with no event: look once.
                if was == Live::Up {
                    vec![]
                } else {
                    self.load(self.tab).into_iter().collect()
                }
            }
            down => {
                self.live = down;
                vec![]
            }
        }
    }

    fn answer(&mut self, answer: Answer) -> Vec<Command> {
        match answer {
            // Health names the host's agency: the title takes it unless another tenant is chosen.
            Answer::Health(Ok(agency)) => {
                if self.tenant.as_ref().is_none_or(|t| *t == agency.0) {
                    self.agency = Some(agency);
                }
            }
            Answer::Health(Err(e)) => self.fail(e),
            Answer::List {
                tab,
                offset,
                limit,
                q,
                result,
            } => return self.listed(tab, offset, limit, q, result),
            Answer::Detail { id, result } => match result {
                Ok(copy) => self.update_copy(copy),
                Err(e) => self.fail(headline(&id, &e)),
            },
            Answer::Directory { q, result } => {
                if let Screen::Form(form) = &mut self.screen {
                    if form.to_query.trim() == q {
                        match result {
                            Ok(found) => {
                                form.matches = found;
                                form.pick = 0;
                            }
                            Err(e) => {
                                form.matches.clear();
                                self.fail(headline("directory", &e));
                            }
                        }
                    }
                }
            }
            Answer::Tenants(result) => {
                if let Screen::Tenants(list, pick) = &mut self.screen {
                    match result {
                        Ok(tenants) => {
                            *pick = tenants
                                .iter()
                                .position(|t| Some(&t.organ_code) == self.tenant.as_ref())
                                .unwrap_or(0);
                            *list = Some(tenants);
                        }
                        Err(e) => {
                            self.screen = Screen::List;
                            self.fail(headline("tenants", &e));
                        }
                    }
                }
            }
            Answer::Sent(result) => match result {
                Ok((message_id, copies)) => {
                    self.screen = Screen::List;
                    self.tab = Tab::Outbox;
                    self.say(format!("queued dispatch {message_id}: {copies} copies"));
                    let list = self.list_mut(Tab::Outbox);
                    list.offset = 0;
                    list.selected = 0;
                    return self.load(Tab::Outbox).into_iter().collect();
                }
                Err(e) => {
                    if let Screen::Form(form) = &mut self.screen {
                        form.submitting = false;
                    }
                    self.fail(headline("not sent", &e));
                }
            },
            Answer::Acted { id, what, result } => match result {
                Ok(copy) => {
                    self.say(format!("{what}: done"));
                    self.update_copy(copy);
                    return self.load(self.tab).into_iter().collect();
                }
                Err(e) => {
                    self.fail(headline(&what, &e));
                    // Refused, say, because the copy moved on meanwhile: show where it is now.
                    return vec![Command::Detail { id }];
                }
            },
            Answer::Fetched { id, dir, result } => match result {
                Ok(n) => self.say(format!("{id}: {n} files written into {}", dir.display())),
                Err(e) => self.fail(headline("fetch", &e)),
            },
        }
        vec![]
    }

    fn listed(
        &mut self,
        tab: Tab,
        offset: usize,
        limit: usize,
        q: String,
        result: Result<(Vec<CopyView>, Option<usize>), String>,
    ) -> Vec<Command> {
        let list = self.list_mut(tab);
        list.loading = false;
        let again = std::mem::take(&mut list.stale) || list.offset != offset || list.query != q;
        match result {
            Ok((rows, total)) => {
                // A node that does not filter or page yet answers everything: the same filter and
                // the page are applied here (a no-op when the node did them).
                let needle = q.to_lowercase();
                let mut rows: Vec<CopyView> = rows
                    .into_iter()
                    .filter(|r| {
                        needle.is_empty()
                            || [&r.number, &r.notation, &r.subject].iter().any(|f| {
                                f.as_deref()
                                    .is_some_and(|t| t.to_lowercase().contains(&needle))
                            })
                    })
                    .collect();
                let total = if rows.len() > limit || total.is_none() {
                    let all = rows.len();
                    if all > limit {
                        rows = rows.into_iter().skip(offset).take(limit).collect();
                        all
                    } else {
                        offset + all
                    }
                } else {
                    total.unwrap_or_default()
                };
                list.lines = group(rows, tab == Tab::Inbox);
                list.total = total;
                list.loaded = true;
                list.selected = list.selected.min(list.lines.len().saturating_sub(1));
                // An open outgoing dispatch follows its copies' states.
                if let Screen::Detail(detail) = &mut self.screen {
                    let lines = &self.lists[tab.index()].lines;
                    if let Some(line) = lines.iter().find(|l| {
                        l.first().message_id.is_some()
                            && l.first().message_id == detail.copies[0].message_id
                            && l.first().direction == detail.copies[0].direction
                    }) {
                        if line.copies.len() > 1 {
                            detail.copies = line.copies.clone();
                            detail.selected = detail.selected.min(detail.copies.len() - 1);
                        }
                    }
                }
            }
            Err(e) => {
                let what = if tab == Tab::Inbox { "inbox" } else { "outbox" };
                self.fail(headline(what, &e));
            }
        }
        if again {
            self.load(tab).into_iter().collect()
        } else {
            vec![]
        }
    }

    /// A fresh view of one copy replaces the old wherever it is shown.
    fn update_copy(&mut self, copy: CopyView) {
        if let Screen::Detail(detail) = &mut self.screen {
            if let Some(slot) = detail.copies.iter_mut().find(|c| c.id == copy.id) {
                if copy.header.is_some() {
                    detail.header = copy.header.clone();
                }
                *slot = copy.clone();
            }
        }
        for list in &mut self.lists {
            for line in &mut list.lines {
                for slot in line.copies.iter_mut().filter(|c| c.id == copy.id) {
                    *slot = CopyView {
                        header: None,
                        ..copy.clone()
                    };
                }
            }
        }
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![];
        }
        if self.prompt.is_some() {
            return self.prompt_key(key);
        }
        // A message stays until the next key: by then it has been read.
        self.status = None;
        match &self.screen {
            Screen::List => self.list_key(key),
            Screen::Detail(_) => self.detail_key(key),
            Screen::Form(_) => self.form_key(key),
            Screen::Tenants(..) => self.tenants_key(key),
        }
    }

    fn ask(&mut self, ask: Ask, input: String) {
        self.prompt = Some(Prompt { ask, input });
    }

    fn prompt_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(prompt) = self.prompt.as_mut() else {
            return vec![];
        };
        match key.code {
            KeyCode::Esc => self.prompt = None,
            KeyCode::Backspace => {
                prompt.input.pop();
            }
            KeyCode::Char(c) if !c.is_control() => prompt.input.push(c),
            KeyCode::Enter => {
                let Some(Prompt { ask, input }) = self.prompt.take() else {
                    return vec![];
                };
                return self.answered(ask, input.trim().to_owned());
            }
            _ => {}
        }
        vec![]
    }

    fn answered(&mut self, ask: Ask, input: String) -> Vec<Command> {
        let needed = !matches!(ask, Ask::Search);
        if needed && input.is_empty() {
            self.fail(format!("{}: nothing given, nothing done", ask.label()));
            return vec![];
        }
        let reason = Some(input.clone());
        let command = match ask {
            Ask::Search => {
                let list = self.list_mut(self.tab);
                list.query = input;
                list.offset = 0;
                list.selected = 0;
                return self.load(self.tab).into_iter().collect();
            }
            Ask::AssignTo(id) => Command::Notice {
                id,
                code: "04",
                to: Some(input),
                reason: None,
            },
            Ask::RefuseReason(id) => Command::Notice {
                id,
                code: "02",
                to: None,
                reason,
            },
            Ask::RecallReason(id) => Command::Recall { id, reason: input },
            Ask::RecallRefuseReason(id) => Command::RecallAnswer {
                id,
                agree: false,
                reason,
            },
            Ask::FetchDir(id) => Command::Fetch {
                id,
                dir: PathBuf::from(input),
            },
        };
        vec![command]
    }

    fn list_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let tab = self.tab;
        let page = self.page_size();
        let list = self.list_mut(tab);
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Tab | KeyCode::BackTab => {
                self.tab = tab.other();
                return self.load(self.tab).into_iter().collect();
            }
            KeyCode::Down | KeyCode::Char('j') => {
                list.selected = (list.selected + 1).min(list.lines.len().saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => list.selected = list.selected.saturating_sub(1),
            KeyCode::Home => list.selected = 0,
            KeyCode::End => list.selected = list.lines.len().saturating_sub(1),
            KeyCode::PageDown if list.offset + page < list.total => {
                list.offset += page;
                list.selected = 0;
                return self.load(tab).into_iter().collect();
            }
            KeyCode::PageUp if list.offset > 0 => {
                list.offset = list.offset.saturating_sub(page);
                list.selected = 0;
                return self.load(tab).into_iter().collect();
            }
            KeyCode::Enter => {
                if let Some(line) = list.lines.get(list.selected) {
                    let copies = line.copies.clone();
                    let id = copies[0].id.clone();
                    self.screen = Screen::Detail(Detail {
                        copies,
                        selected: 0,
                        header: None,
                        scroll: 0,
                    });
                    return vec![Command::Detail { id }];
                }
            }
            KeyCode::Char('/') => {
                let q = list.query.clone();
                self.ask(Ask::Search, q);
            }
            KeyCode::Char('n') => {
                self.screen = Screen::Form(Form::default());
                self.status = None;
            }
            KeyCode::Char('t') => {
                self.screen = Screen::Tenants(None, 0);
                return vec![Command::Tenants];
            }
            KeyCode::Char('g') | KeyCode::F(5) => return self.load(tab).into_iter().collect(),
            _ => {}
        }
        vec![]
    }

    fn detail_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Screen::Detail(detail) = &mut self.screen else {
            return vec![];
        };
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('q') => {
                self.screen = Screen::List;
                return vec![];
            }
            KeyCode::Down | KeyCode::Char('j') => {
                detail.selected = (detail.selected + 1).min(detail.copies.len().saturating_sub(1));
                return vec![];
            }
            KeyCode::Up | KeyCode::Char('k') => {
                detail.selected = detail.selected.saturating_sub(1);
                return vec![];
            }
            KeyCode::PageDown => {
                detail.scroll = detail.scroll.saturating_add(10);
                return vec![];
            }
            KeyCode::PageUp => {
                detail.scroll = detail.scroll.saturating_sub(10);
                return vec![];
            }
            _ => {}
        }
        let Some(copy) = detail.copy() else {
            return vec![];
        };
        let id = copy.id.clone();
        let KeyCode::Char(c) = key.code else {
            return vec![];
        };
        if let Some(&notice) = copy.allowed_notices().iter().find(|n| n.key() == c) {
            return match notice {
                NoticeCode::Assigned => {
                    self.ask(Ask::AssignTo(id), String::new());
                    vec![]
                }
                NoticeCode::Refused => {
                    self.ask(Ask::RefuseReason(id), String::new());
                    vec![]
                }
                other => vec![Command::Notice {
                    id,
                    code: other.code(),
                    to: None,
                    reason: None,
                }],
            };
        }
        match c {
            'f' if copy.incoming() && copy.status == "registered" => {
                let dir = format!("vdx-{}", copy.id.get(..8).unwrap_or(&copy.id));
                self.ask(Ask::FetchDir(id), dir);
            }
            'R' if copy.may_recall() => self.ask(Ask::RecallReason(id), String::new()),
            'y' if copy.incoming() && copy.recall_pending() => {
                return vec![Command::RecallAnswer {
                    id,
                    agree: true,
                    reason: None,
                }];
            }
            'N' if copy.incoming() && copy.recall_pending() => {
                self.ask(Ask::RecallRefuseReason(id), String::new());
            }
            'g' => return vec![Command::Detail { id }],
            _ => {}
        }
        vec![]
    }

    fn form_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Screen::Form(form) = &mut self.screen else {
            return vec![];
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let field = form.field();
        match key.code {
            KeyCode::Esc => {
                self.screen = Screen::List;
                self.say("not sent");
            }
            KeyCode::F(2) | KeyCode::Char('s') if key.code == KeyCode::F(2) || ctrl => {
                if form.submitting {
                    return vec![];
                }
                match form.request() {
                    Ok((request, files)) => {
                        form.submitting = true;
                        self.say("sending…");
                        return vec![Command::Send { request, files }];
                    }
                    Err(e) => self.fail(e.to_string()),
                }
            }
            KeyCode::Tab => form.field = (form.field + 1) % FIELDS.len(),
            KeyCode::BackTab => form.field = (form.field + FIELDS.len() - 1) % FIELDS.len(),
            KeyCode::Down if field == Field::To && !form.matches.is_empty() => {
                form.pick = (form.pick + 1).min(form.matches.len() - 1);
            }
            KeyCode::Up if field == Field::To && !form.matches.is_empty() => {
                form.pick = form.pick.saturating_sub(1);
            }
            KeyCode::Down => form.field = (form.field + 1) % FIELDS.len(),
            KeyCode::Up => form.field = (form.field + FIELDS.len() - 1) % FIELDS.len(),
            KeyCode::Left | KeyCode::Right => {
                let step = |i: usize, n: usize| {
                    if key.code == KeyCode::Right {
                        (i + 1) % n
                    } else {
                        (i + n - 1) % n
                    }
                };
                match field {
                    Field::Urgency => form.urgency = step(form.urgency, URGENCIES.len()),
                    Field::Classification => {
                        form.classification = step(form.classification, CLASSIFICATIONS.len())
                    }
                    _ => {}
                }
            }
            KeyCode::Enter => match field {
                Field::To => {
                    let typed = form.to_query.trim().to_owned();
                    let chosen = match form.matches.get(form.pick) {
                        Some(agency) => Some(agency.clone()),
                        None if typed.parse::<OrganCode>().is_ok() => Some(Agency {
                            organ_code: typed.clone(),
                            name: String::new(),
                        }),
                        None => None,
                    };
                    match chosen {
                        Some(agency) => {
                            if !form.to.iter().any(|a| a.organ_code == agency.organ_code) {
                                form.to.push(agency);
                            }
                            form.to_query.clear();
                            form.matches.clear();
                        }
                        None => {
                            let e = FormError::UnknownRecipient(typed);
                            self.fail(e.to_string());
                        }
                    }
                }
                Field::Files => {
                    let path = form.file_input.trim().to_owned();
                    if !path.is_empty() {
                        form.files.push(path);
                        form.file_input.clear();
                    }
                }
                _ => form.field = (form.field + 1) % FIELDS.len(),
            },
            KeyCode::Backspace => match field {
                Field::To if form.to_query.is_empty() => {
                    form.to.pop();
                }
                Field::Files if form.file_input.is_empty() => {
                    form.files.pop();
                }
                _ => {
                    if let Some(text) = text_of(form, field) {
                        text.pop();
                    }
                    if field == Field::To {
                        return search(form);
                    }
                }
            },
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                if let Some(text) = text_of(form, field) {
                    text.push(c);
                }
                if field == Field::To {
                    return search(form);
                }
            }
            _ => {}
        }
        vec![]
    }

    fn tenants_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Screen::Tenants(list, pick) = &mut self.screen else {
            return vec![];
        };
        let n = list.as_ref().map_or(0, Vec::len);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => self.screen = Screen::List,
            KeyCode::Down | KeyCode::Char('j') => *pick = (*pick + 1).min(n.saturating_sub(1)),
            KeyCode::Up | KeyCode::Char('k') => *pick = pick.saturating_sub(1),
            KeyCode::Enter => {
                let Some(tenant) = list.as_ref().and_then(|l| l.get(*pick)) else {
                    return vec![];
                };
                let (code, name) = (tenant.organ_code.clone(), tenant.name.clone());
                self.say(format!("acting for {code} {name}"));
                self.agency = Some((code.clone(), name));
                self.tenant = Some(code.clone());
                self.generation += 1;
                self.lists = Default::default();
                self.live = Live::Down("connecting".into());
                self.last_event = None;
                self.screen = Screen::List;
                let mut commands = vec![Command::SetTenant {
                    code: Some(code),
                    generation: self.generation,
                }];
                commands.extend(self.load(self.tab));
                return commands;
            }
            _ => {}
        }
        vec![]
    }
}

/// An error for the status line, its API code first (`notice 03 (bad_transition): …`): the
/// line is one row, and the code is what a clerk can act on when the message is cut.
pub(crate) fn headline(what: &str, error: &str) -> String {
    if let Some((message, code)) = error.strip_suffix(')').and_then(|e| e.rsplit_once(" (")) {
        if !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return format!("{what} ({code}): {message}");
        }
    }
    format!("{what}: {error}")
}

/// The text field `field` edits, if it is one.
fn text_of(form: &mut Form, field: Field) -> Option<&mut String> {
    match field {
        Field::To => Some(&mut form.to_query),
        Field::Subject => Some(&mut form.subject),
        Field::Number => Some(&mut form.number),
        Field::Notation => Some(&mut form.notation),
        Field::Files => Some(&mut form.file_input),
        Field::Due => Some(&mut form.due),
        Field::Urgency | Field::Classification => None,
    }
}

/// The directory search for what is typed in the recipient field.
fn search(form: &mut Form) -> Vec<Command> {
    let q = form.to_query.trim().to_owned();
    if q.is_empty() {
        form.matches.clear();
        return vec![];
    }
    vec![Command::Directory { q }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) -> Vec<Command> {
        text.chars()
            .flat_map(|c| app.handle(key(KeyCode::Char(c))))
            .collect()
    }

    fn copy(id: &str, mid: &str, direction: &str, status: &str, subject: &str) -> CopyView {
        CopyView {
            id: id.into(),
            message_id: Some(mid.into()),
            direction: direction.into(),
            status: status.into(),
            subject: Some(subject.into()),
            number: Some("12".into()),
            notation: Some("UBND-VP".into()),
            urgency: "thuong".into(),
            ..CopyView::default()
        }
    }

    fn answer(app: &mut App, answer: Answer) -> Vec<Command> {
        let generation = app.generation;
        app.handle(Event::Answer {
            generation,
            answer: Box::new(answer),
        })
    }

    fn listed(app: &mut App, tab: Tab, rows: Vec<CopyView>) -> Vec<Command> {
        let list = app.list(tab);
        let (offset, limit, q) = (list.offset, app.page_size(), list.query.clone());
        answer(
            app,
            Answer::List {
                tab,
                offset,
                limit,
                q,
                result: Ok((rows, None)),
            },
        )
    }

    #[test]
    fn it_starts_by_asking_for_the_agency_the_events_and_the_inbox() {
        let (app, commands) = App::new(None, (80, 24));
        assert_eq!(app.page_size(), 20);
        assert_eq!(
            commands,
            [
                Command::Health,
                Command::SetTenant {
                    code: None,
                    generation: 0
                },
                Command::List {
                    tab: Tab::Inbox,
                    offset: 0,
                    limit: 20,
                    q: String::new()
                },
            ]
        );
    }

    #[test]
    fn keys_move_switch_search_page_and_open() {
        let (mut app, _) = App::new(None, (80, 24));
        let rows: Vec<CopyView> = (0..45)
            .map(|i| {
                copy(
                    &format!("{i:032x}"),
                    &format!("m{i}"),
                    "incoming",
                    "registered",
                    "Công văn",
                )
            })
            .collect();
        // A node that does not page yet: the app shows the first page and knows the total.
        assert!(listed(&mut app, Tab::Inbox, rows.clone()).is_empty());
        assert_eq!(app.list(Tab::Inbox).lines.len(), 20);
        assert_eq!(app.list(Tab::Inbox).total, 45);
        app.handle(key(KeyCode::Down));
        app.handle(key(KeyCode::Down));
        assert_eq!(app.list(Tab::Inbox).selected, 2);
        assert_eq!(
            app.handle(key(KeyCode::PageDown)),
            [Command::List {
                tab: Tab::Inbox,
                offset: 20,
                limit: 20,
                q: String::new()
            }]
        );
        listed(&mut app, Tab::Inbox, rows.clone());
        assert_eq!(
            app.list(Tab::Inbox).lines[0].first().id,
            format!("{:032x}", 20)
        );
        // The last page: no further.
        app.handle(key(KeyCode::PageDown));
        listed(&mut app, Tab::Inbox, rows);
        assert_eq!(app.list(Tab::Inbox).lines.len(), 5);
        assert!(app.handle(key(KeyCode::PageDown)).is_empty());
        // Search: `/`, text, Enter asks for q from the first page.
        app.handle(key(KeyCode::Char('/')));
        typed(&mut app, "bão");
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            [Command::List {
                tab: Tab::Inbox,
                offset: 0,
                limit: 20,
                q: "bão".into()
            }]
        );
        assert!(app.prompt.is_none());
        // Tab to the outbox loads it.
        assert_eq!(
            app.handle(key(KeyCode::Tab)),
            [Command::List {
                tab: Tab::Outbox,
                offset: 0,
                limit: 20,
                q: String::new()
            }]
        );
        assert_eq!(app.tab, Tab::Outbox);
        app.handle(key(KeyCode::Tab));
        // Enter opens the selected dispatch and asks for its detail.
        listed(
            &mut app,
            Tab::Inbox,
            vec![copy(
                "a1",
                "m1",
                "incoming",
                "registered",
                "Thông báo bão số 3",
            )],
        );
        let opened = app.handle(key(KeyCode::Enter));
        assert_eq!(opened, [Command::Detail { id: "a1".into() }]);
        assert!(matches!(app.screen, Screen::Detail(_)));
        app.handle(key(KeyCode::Esc));
        assert!(matches!(app.screen, Screen::List));
        app.handle(key(KeyCode::Char('q')));
        assert!(app.quit);
    }

    #[test]
    fn the_search_filters_here_when_the_node_does_not() {
        let (mut app, _) = App::new(None, (80, 24));
        app.handle(key(KeyCode::Char('/')));
        typed(&mut app, "BÃO");
        app.handle(key(KeyCode::Enter));
        listed(
            &mut app,
            Tab::Inbox,
            vec![
                copy(
                    "a1",
                    "m1",
                    "incoming",
                    "registered",
                    "Thông báo khẩn: phòng chống bão số 3",
                ),
                copy(
                    "a2",
                    "m2",
                    "incoming",
                    "registered",
                    "Về việc triển khai Nghị định 30/2020/NĐ-CP",
                ),
            ],
        );
        let lines = &app.list(Tab::Inbox).lines;
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].first().id, "a1");
    }

    #[test]
    fn the_detail_offers_only_the_notices_the_state_allows_and_prompts_for_to_and_reason() {
        let (mut app, _) = App::new(None, (80, 24));
        listed(
            &mut app,
            Tab::Inbox,
            vec![copy("a1", "m1", "incoming", "registered", "Công văn")],
        );
        app.handle(key(KeyCode::Enter));
        // Arrived: 06 is not offered, 03 is.
        assert!(app.handle(key(KeyCode::Char('d'))).is_empty());
        assert!(app.handle(key(KeyCode::Char('a'))).is_empty());
        assert!(app.prompt.is_none());
        assert_eq!(
            app.handle(key(KeyCode::Char('r'))),
            [Command::Notice {
                id: "a1".into(),
                code: "03",
                to: None,
                reason: None
            }]
        );
        let mut registered = copy("a1", "m1", "incoming", "registered", "Công văn");
        registered.workflow = Some("registered".into());
        answer(
            &mut app,
            Answer::Acted {
                id: "a1".into(),
                what: "notice 03".into(),
                result: Ok(registered),
            },
        );
        // Registered: 04 asks whom to, and an empty answer sends nothing.
        assert!(app.handle(key(KeyCode::Char('a'))).is_empty());
        assert_eq!(
            app.prompt.as_ref().map(|p| &p.ask),
            Some(&Ask::AssignTo("a1".into()))
        );
        assert!(app.handle(key(KeyCode::Enter)).is_empty());
        assert!(app.status.as_ref().is_some_and(|(_, error)| *error));
        app.handle(key(KeyCode::Char('a')));
        typed(&mut app, "Nguyễn Văn A");
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            [Command::Notice {
                id: "a1".into(),
                code: "04",
                to: Some("Nguyễn Văn A".into()),
                reason: None
            }]
        );
        // Refusing asks for a reason.
        app.handle(key(KeyCode::Char('x')));
        typed(&mut app, "sai địa chỉ");
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            [Command::Notice {
                id: "a1".into(),
                code: "02",
                to: None,
                reason: Some("sai địa chỉ".into())
            }]
        );
        // A recall pending: y agrees at once, N asks why not.
        let mut pending = copy("a1", "m1", "incoming", "registered", "Công văn");
        pending.recall = Some(super::super::model::Recall {
            reason: "nhầm".into(),
            time: 1,
            answer: None,
        });
        answer(
            &mut app,
            Answer::Detail {
                id: "a1".into(),
                result: Ok(pending),
            },
        );
        assert_eq!(
            app.handle(key(KeyCode::Char('y'))),
            [Command::RecallAnswer {
                id: "a1".into(),
                agree: true,
                reason: None
            }]
        );
        app.handle(key(KeyCode::Char('N')));
        typed(&mut app, "đã xử lý");
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            [Command::RecallAnswer {
                id: "a1".into(),
                agree: false,
                reason: Some("đã xử lý".into())
            }]
        );
        // The fetch proposes a directory named after the copy.
        app.handle(key(KeyCode::Char('f')));
        assert_eq!(
            app.prompt.as_ref().map(|p| p.input.as_str()),
            Some("vdx-a1")
        );
    }

    #[test]
    fn an_outgoing_dispatch_is_recalled_copy_by_copy() {
        let (mut app, _) = App::new(None, (80, 24));
        app.handle(key(KeyCode::Tab));
        listed(
            &mut app,
            Tab::Outbox,
            vec![
                copy("a1", "m1", "outgoing", "delivered", "Công văn"),
                copy("a2", "m1", "outgoing", "failed", "Công văn"),
            ],
        );
        assert_eq!(app.list(Tab::Outbox).lines.len(), 1);
        app.handle(key(KeyCode::Enter));
        // No notice keys for an outgoing copy.
        assert!(app.handle(key(KeyCode::Char('r'))).is_empty());
        assert!(app.prompt.is_none());
        app.handle(key(KeyCode::Char('R')));
        typed(&mut app, "gửi nhầm");
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            [Command::Recall {
                id: "a1".into(),
                reason: "gửi nhầm".into()
            }]
        );
        // The failed copy cannot be recalled.
        app.handle(key(KeyCode::Down));
        app.handle(key(KeyCode::Char('R')));
        assert!(app.prompt.is_none());
    }

    #[test]
    fn the_form_checks_what_the_node_would_refuse_before_sending() {
        let mut form = Form::default();
        assert_eq!(form.request().unwrap_err(), FormError::NoRecipient);
        form.to_query = "Nghệ An".into();
        assert!(matches!(
            form.request(),
            Err(FormError::UnknownRecipient(_))
        ));
        form.to_query = "000.00.00.H41".into();
        assert_eq!(form.request().unwrap_err(), FormError::NoSubject);
        form.subject = "Thông báo khẩn: phòng chống bão số 3".into();
        assert_eq!(form.request().unwrap_err(), FormError::Missing("number"));
        form.number = "12/UB".into();
        assert_eq!(
            form.request().unwrap_err(),
            FormError::BadChar("number", '/')
        );
        form.number = "12".into();
        form.notation = "UBND,VP".into();
        assert_eq!(
            form.request().unwrap_err(),
            FormError::BadChar("notation", ',')
        );
        form.notation = "UBND-VP".into();
        assert_eq!(form.request().unwrap_err(), FormError::NoFiles);
        form.file_input = "cv.pdf".into();
        form.due = "2026-02-30".into();
        assert!(matches!(form.request(), Err(FormError::BadDueDate(_))));
        form.due = "2026-12-31".into();
        form.urgency = 3;
        let (request, files) = form.request().unwrap();
        assert_eq!(request["to"], json!(["000.00.00.H41"]));
        assert_eq!(request["urgency"], "hoa-toc");
        assert_eq!(request["classification"], "none");
        assert_eq!(request["due_date"], "2026-12-31");
        assert_eq!(files, [PathBuf::from("cv.pdf")]);
        // Tuyệt mật carries no subject.
        form.classification = 3;
        assert_eq!(form.request().unwrap_err(), FormError::SubjectNotAllowed);
        form.subject.clear();
        assert_eq!(form.request().unwrap().0["subject"], Value::Null);
    }

    #[test]
    fn the_form_picks_recipients_from_the_directory_and_submits_once() {
        let (mut app, _) = App::new(None, (80, 24));
        app.handle(key(KeyCode::Char('n')));
        let searched = typed(&mut app, "Ng");
        assert_eq!(
            searched.last(),
            Some(&Command::Directory { q: "Ng".into() })
        );
        let found = vec![
            Agency {
                organ_code: "000.00.00.H40".into(),
                name: "UBND tỉnh Nghệ An".into(),
            },
            Agency {
                organ_code: "000.00.00.H41".into(),
                name: "UBND tỉnh Ninh Bình".into(),
            },
        ];
        // An answer to an older search is ignored.
        answer(
            &mut app,
            Answer::Directory {
                q: "N".into(),
                result: Ok(vec![]),
            },
        );
        answer(
            &mut app,
            Answer::Directory {
                q: "Ng".into(),
                result: Ok(found),
            },
        );
        app.handle(key(KeyCode::Down));
        app.handle(key(KeyCode::Enter));
        let Screen::Form(form) = &app.screen else {
            panic!("the form")
        };
        assert_eq!(form.to.len(), 1);
        assert_eq!(form.to[0].organ_code, "000.00.00.H41");
        // A code typed in full is taken without the directory (a node without the search).
        typed(&mut app, "000.00.00.H26");
        answer(
            &mut app,
            Answer::Directory {
                q: "000.00.00.H26".into(),
                result: Err("no such endpoint (not_found)".into()),
            },
        );
        app.handle(key(KeyCode::Enter));
        app.handle(key(KeyCode::Tab));
        typed(&mut app, "Về việc triển khai Nghị định 30/2020/NĐ-CP");
        app.handle(key(KeyCode::Tab));
        typed(&mut app, "30");
        app.handle(key(KeyCode::Tab));
        typed(&mut app, "NĐ-CP");
        app.handle(key(KeyCode::Tab));
        app.handle(key(KeyCode::Right));
        app.handle(key(KeyCode::Tab));
        app.handle(key(KeyCode::Tab));
        typed(&mut app, "a.pdf");
        app.handle(key(KeyCode::Enter));
        let sent = app.handle(key(KeyCode::F(2)));
        let [Command::Send { request, files }] = sent.as_slice() else {
            panic!("{sent:?}")
        };
        assert_eq!(request["to"], json!(["000.00.00.H41", "000.00.00.H26"]));
        assert_eq!(request["urgency"], "khan");
        assert_eq!(request["number"], "30");
        assert_eq!(files, &[PathBuf::from("a.pdf")]);
        // Pressed again while it is under way: nothing more.
        assert!(app.handle(key(KeyCode::F(2))).is_empty());
        let done = answer(&mut app, Answer::Sent(Ok(("m-1".into(), 2))));
        assert_eq!(app.tab, Tab::Outbox);
        assert!(matches!(app.screen, Screen::List));
        assert!(matches!(
            done.as_slice(),
            [Command::List {
                tab: Tab::Outbox,
                ..
            }]
        ));
    }

    #[test]
    fn live_events_refresh_without_a_key_and_polling_takes_over_without_them() {
        let (mut app, _) = App::new(None, (80, 24));
        listed(&mut app, Tab::Inbox, vec![]);
        // No events served: every POLL_TICKS ticks the list is asked for again.
        let mut polled = vec![];
        for _ in 0..POLL_TICKS {
            polled.extend(app.handle(Event::Tick));
        }
        assert_eq!(polled.len(), 1);
        listed(&mut app, Tab::Inbox, vec![]);
        // The stream opens: one look at the list, for what happened before it.
        let opened = app.handle(Event::Live {
            generation: 0,
            live: Live::Up,
        });
        assert!(matches!(opened.as_slice(), [Command::List { .. }]));
        listed(&mut app, Tab::Inbox, vec![]);
        for _ in 0..POLL_TICKS * 2 {
            assert!(app.handle(Event::Tick).is_empty());
        }
        // An entry reloads the list; two more while it loads make one more load after it.
        let live = |i| Event::Live {
            generation: 0,
            live: Live::Entry {
                index: i,
                id: Some("a1".into()),
            },
        };
        assert_eq!(app.handle(live(7)).len(), 1);
        assert!(app.handle(live(8)).is_empty());
        assert!(app.handle(live(9)).is_empty());
        assert_eq!(app.last_event, Some(9));
        assert_eq!(listed(&mut app, Tab::Inbox, vec![]).len(), 1);
        assert!(listed(&mut app, Tab::Inbox, vec![]).is_empty());
        // Events of an earlier tenant choice are dropped.
        app.generation = 1;
        assert!(app
            .handle(Event::Live {
                generation: 0,
                live: Live::Entry {
                    index: 10,
                    id: None
                }
            })
            .is_empty());
    }

    #[test]
    fn the_tenant_picker_switches_every_request_to_the_chosen_agency() {
        let (mut app, _) = App::new(None, (80, 24));
        assert_eq!(app.handle(key(KeyCode::Char('t'))), [Command::Tenants]);
        answer(
            &mut app,
            Answer::Tenants(Ok(vec![
                Tenant {
                    organ_code: "000.00.00.H41".into(),
                    name: "Nghệ An".into(),
                    own: true,
                },
                Tenant {
                    organ_code: "000.01.41.H41".into(),
                    name: "Sở Nội vụ".into(),
                    own: false,
                },
            ])),
        );
        app.handle(key(KeyCode::Down));
        let commands = app.handle(key(KeyCode::Enter));
        assert_eq!(
            commands,
            [
                Command::SetTenant {
                    code: Some("000.01.41.H41".into()),
                    generation: 1
                },
                Command::List {
                    tab: Tab::Inbox,
                    offset: 0,
                    limit: 20,
                    q: String::new()
                },
            ]
        );
        assert_eq!(app.tenant.as_deref(), Some("000.01.41.H41"));
        // The host's health does not rename the title of the tenant chosen.
        answer(
            &mut app,
            Answer::Health(Ok(("000.00.00.H41".into(), "Nghệ An".into()))),
        );
        assert_eq!(
            app.agency,
            Some(("000.01.41.H41".into(), "Sở Nội vụ".into()))
        );
        // An answer made for the earlier choice is not shown.
        app.handle(Event::Answer {
            generation: 0,
            answer: Box::new(Answer::List {
                tab: Tab::Inbox,
                offset: 0,
                limit: 20,
                q: String::new(),
                result: Ok((vec![copy("old", "m", "incoming", "registered", "x")], None)),
            }),
        });
        assert!(app.list(Tab::Inbox).lines.is_empty());
    }

    #[test]
    fn an_api_error_goes_to_the_status_line_and_the_app_keeps_running() {
        let (mut app, _) = App::new(None, (80, 24));
        listed(
            &mut app,
            Tab::Inbox,
            vec![copy("a1", "m1", "incoming", "registered", "Công văn")],
        );
        app.handle(key(KeyCode::Enter));
        answer(
            &mut app,
            Answer::Acted {
                id: "a1".into(),
                what: "notice 03".into(),
                result: Err("no such endpoint (not_found)".into()),
            },
        );
        let (text, error) = app.status.clone().unwrap();
        assert!(error, "{text}");
        assert_eq!(text, "notice 03 (not_found): no such endpoint");
        assert_eq!(headline("fetch", "disk full"), "fetch: disk full");
        assert!(matches!(app.screen, Screen::Detail(_)));
        assert!(!app.quit);
    }
}
