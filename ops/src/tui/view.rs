//! What the TUI draws, from the [`App`] alone: `render` reads the state and writes a frame, so a
//! screen can be checked cell by cell on ratatui's `TestBackend`. Every list cell is cut and
//! padded by display width ([`super::text::fit`]), so that columns line up with Vietnamese text.

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use serde_json::Value;

use super::app::{App, Field, Form, Live, Screen, Tab, CLASSIFICATIONS, URGENCIES};
use super::model::{class_mark, notice_name, urgency_mark, CopyView, Line, Tenant};
use super::text::{cut, fit, tail, width};

/// A column of a list: its title and width in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) title: &'static str,
    pub(crate) width: usize,
}

/// The subject column takes what the others leave, at least this much.
const MIN_SUBJECT: usize = 8;

/// The columns of `tab`'s list on a screen `width` cells wide (one space between columns).
pub(crate) fn columns(tab: Tab, width: usize) -> Vec<Column> {
    let col = |title, width| Column { title, width };
    let mut cols = match tab {
        Tab::Inbox => vec![
            col("", 6),
            col("SỐ ĐẾN", 7),
            col("SỐ/KÝ HIỆU", 12),
            col("NƠI GỬI", 13),
            col("TRÍCH YẾU", 0),
            col("TRẠNG THÁI", 11),
            col("HẠN", 5),
        ],
        Tab::Outbox => vec![
            col("", 6),
            col("SỐ/KÝ HIỆU", 12),
            col("NƠI NHẬN", 13),
            col("TRÍCH YẾU", 0),
            col("TRẠNG THÁI", 18),
            col("HẠN", 5),
        ],
    };
    let fixed: usize = cols.iter().map(|c| c.width).sum::<usize>() + cols.len() - 1;
    if let Some(subject) = cols.iter_mut().find(|c| c.title == "TRÍCH YẾU") {
        subject.width = width.saturating_sub(fixed).max(MIN_SUBJECT);
    }
    cols
}

/// The text of each cell of a list line, in [`columns`] order.
pub(crate) fn cells(tab: Tab, line: &Line) -> Vec<String> {
    let c = line.first();
    let marks = format!(
        "{:<2} {}",
        urgency_mark(&c.urgency),
        class_mark(c.classification.as_deref())
    );
    let subject = match (&c.subject, c.classification.as_deref()) {
        (Some(s), _) => s.clone(),
        (None, Some("tuyet-mat")) => "(tuyệt mật)".to_owned(),
        (None, _) => String::new(),
    };
    let due = c.due_date.as_deref().map(short_date).unwrap_or_default();
    match tab {
        Tab::Inbox => {
            let mut state = c.state().to_owned();
            if c.recall_pending() {
                state = format!("↩{state}");
            }
            vec![
                marks,
                c.incoming_number.clone().unwrap_or_default(),
                c.code(),
                c.from.clone(),
                subject,
                state,
                due,
            ]
        }
        Tab::Outbox => {
            let (party, state) = if line.copies.len() > 1 {
                let counts: Vec<String> = line
                    .counts()
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect();
                (format!("{} nơi nhận", line.copies.len()), counts.join("·"))
            } else {
                (c.to.clone(), c.state().to_owned())
            };
            vec![marks, c.code(), party, subject, state, due]
        }
    }
}

/// `YYYY-MM-DD` as `DD/MM`.
fn short_date(date: &str) -> String {
    match (date.get(8..10), date.get(5..7)) {
        (Some(d), Some(m)) => format!("{d}/{m}"),
        _ => date.to_owned(),
    }
}

/// How a line stands out: hỏa tốc red, thượng khẩn yellow, both bold.
fn row_style(copy: &CopyView) -> Style {
    if copy.flash() {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else if copy.urgency == "thuong-khan" {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    }
}

/// A list line as drawn: every cell exactly its column's width.
pub(crate) fn row(tab: Tab, line: &Line, cols: &[Column], selected: bool) -> TextLine<'static> {
    let mut style = row_style(line.first());
    if selected {
        style = style.add_modifier(Modifier::REVERSED);
    }
    let mut spans = Vec::new();
    for (i, (text, col)) in cells(tab, line).iter().zip(cols).enumerate() {
        if i > 0 {
            spans.push(Span::styled(" ", style));
        }
        let cell_style = if col.title == "HẠN" && line.overdue() {
            style
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            style
        };
        spans.push(Span::styled(fit(text, col.width), cell_style));
    }
    TextLine::from(spans)
}

/// The column titles as drawn.
pub(crate) fn header(cols: &[Column]) -> TextLine<'static> {
    let titles: Vec<String> = cols.iter().map(|c| fit(c.title, c.width)).collect();
    TextLine::styled(
        titles.join(" "),
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    )
}

/// The keys of the screen shown, as (key, what it does): the bottom line.
pub(crate) fn keys(app: &App) -> Vec<(&'static str, &'static str)> {
    if app.prompt.is_some() {
        return vec![("Enter", "ok"), ("Esc", "cancel")];
    }
    match &app.screen {
        Screen::List => vec![
            ("↑↓", "move"),
            ("Enter", "open"),
            (
                "Tab",
                if app.tab == Tab::Inbox {
                    "outbox"
                } else {
                    "inbox"
                },
            ),
            ("n", "new"),
            ("/", "search"),
            ("PgUp/Dn", "page"),
            ("t", "tenant"),
            ("q", "quit"),
        ],
        Screen::Detail(detail) => {
            let mut keys = vec![("Esc", "back")];
            if detail.copies.len() > 1 {
                keys.push(("↑↓", "copy"));
            }
            if let Some(copy) = detail.copy() {
                for notice in copy.allowed_notices() {
                    keys.push((notice.key_text(), notice.label()));
                }
                if copy.incoming() && copy.status == "registered" {
                    keys.push(("f", "fetch files"));
                }
                if copy.may_recall() {
                    keys.push(("R", "recall 13"));
                }
                if copy.incoming() && copy.recall_pending() {
                    keys.push(("y", "agree recall 15"));
                    keys.push(("N", "refuse recall 16"));
                }
            }
            keys.push(("PgDn", "scroll"));
            keys
        }
        Screen::Form(form) => {
            let mut keys = vec![("Tab", "next field"), ("F2/^S", "send"), ("Esc", "cancel")];
            match form.field() {
                Field::To => keys.extend([("↑↓", "pick"), ("Enter", "add"), ("⌫", "remove")]),
                Field::Files => keys.extend([("Enter", "add path"), ("⌫", "remove")]),
                Field::Urgency | Field::Classification => keys.push(("←→", "choose")),
                _ => {}
            }
            keys
        }
        Screen::Tenants(..) => vec![("↑↓", "move"), ("Enter", "act for it"), ("Esc", "back")],
    }
}

/// Draws the whole screen.
pub(crate) fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    if area.height < 4 || area.width < 20 {
        frame.render_widget(Paragraph::new("vdx tui: the terminal is too small"), area);
        return;
    }
    let w = usize::from(area.width);
    let title = Rect::new(area.x, area.y, area.width, 1);
    let body = Rect::new(area.x, area.y + 1, area.width, area.height - 3);
    let status = Rect::new(area.x, area.y + area.height - 2, area.width, 1);
    let bottom = Rect::new(area.x, area.y + area.height - 1, area.width, 1);
    frame.render_widget(Paragraph::new(title_line(app, w)), title);
    match &app.screen {
        Screen::List => render_list(app, frame, body),
        Screen::Detail(detail) => {
            let lines = detail_lines(&detail.copies, detail.selected, detail.header.as_ref());
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .scroll((detail.scroll, 0)),
                body,
            );
        }
        Screen::Form(form) => render_form(form, frame, body),
        Screen::Tenants(list, pick) => render_tenants(list.as_deref(), *pick, frame, body),
    }
    // The status line: a question being answered, else the last message, else where we are.
    match &app.prompt {
        Some(prompt) => {
            let label = format!("{}: ", prompt.ask.label());
            let room = w.saturating_sub(width(&label) + 1);
            let shown = tail(&prompt.input, room);
            let x = width(&label) + width(&shown);
            frame.render_widget(
                Paragraph::new(TextLine::from(vec![
                    Span::styled(label.clone(), Style::new().add_modifier(Modifier::BOLD)),
                    Span::raw(shown),
                ])),
                status,
            );
            frame.set_cursor_position(Position::new(status.x + x.min(w - 1) as u16, status.y));
        }
        None => {
            let (text, style) = match &app.status {
                Some((text, true)) => (
                    text.clone(),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                Some((text, false)) => (text.clone(), Style::new().fg(Color::Green)),
                None => (where_we_are(app), Style::new().fg(Color::DarkGray)),
            };
            frame.render_widget(
                Paragraph::new(TextLine::styled(cut(&text, w), style)),
                status,
            );
        }
    }
    let keys: Vec<String> = keys(app)
        .iter()
        .map(|(k, what)| format!("{k} {what}"))
        .collect();
    frame.render_widget(
        Paragraph::new(TextLine::styled(
            cut(&keys.join("  "), w),
            Style::new().add_modifier(Modifier::REVERSED),
        )),
        bottom,
    );
}

fn title_line(app: &App, w: usize) -> TextLine<'static> {
    let agency = match (&app.agency, &app.tenant) {
        (Some((code, name)), _) => format!("{code} {name}"),
        (None, Some(code)) => code.clone(),
        (None, None) => String::new(),
    };
    let tab = |t: Tab, name: &str| {
        let list = app.list(t);
        let text = if list.loaded {
            format!(" {name} ({}) ", list.total)
        } else {
            format!(" {name} ")
        };
        let style = if app.tab == t {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new()
        };
        Span::styled(text, style)
    };
    let live = match app.live {
        Live::Up => Span::styled(" ● live", Style::new().fg(Color::Green)),
        _ => Span::styled(" ○ polling", Style::new().fg(Color::DarkGray)),
    };
    let fixed = 27 + width(" Outbox (000000) ") * 2;
    TextLine::from(vec![
        Span::styled(
            format!(" vdx · {} ", cut(&agency, w.saturating_sub(fixed))),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        tab(Tab::Inbox, "Inbox"),
        tab(Tab::Outbox, "Outbox"),
        live,
    ])
}

fn where_we_are(app: &App) -> String {
    if let Screen::Detail(detail) = &app.screen {
        // The id `vdx show` and `vdx fetch` take.
        return detail
            .copy()
            .map(|c| format!("dispatch {}", c.id))
            .unwrap_or_default();
    }
    let list = app.list(app.tab);
    if !list.loaded {
        return "loading…".into();
    }
    let page = app.page_size();
    let pages = list.total.div_ceil(page).max(1);
    let mut text = format!(
        "page {}/{pages} · {} dispatches",
        list.offset / page + 1,
        list.total
    );
    if !list.query.is_empty() {
        text += &format!(" · search: {}", list.query);
    }
    text
}

fn render_list(app: &App, frame: &mut Frame<'_>, body: Rect) {
    let list = app.list(app.tab);
    let cols = columns(app.tab, usize::from(body.width));
    let mut lines = vec![header(&cols)];
    let rows = usize::from(body.height.saturating_sub(1));
    // Keep the cursor on screen.
    let first = list.selected.saturating_sub(rows.saturating_sub(1));
    for (i, line) in list.lines.iter().enumerate().skip(first).take(rows) {
        lines.push(row(app.tab, line, &cols, i == list.selected));
    }
    if list.loaded && list.lines.is_empty() {
        let empty = if list.query.is_empty() {
            "nothing here yet"
        } else {
            "nothing matches the search"
        };
        lines.push(TextLine::styled(empty, Style::new().fg(Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines), body);
}

/// A Unix time as Vietnam reads it (UTC+7).
fn local_time(secs: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs as i64) else {
        return secs.to_string();
    };
    let t = t.to_offset(time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC));
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.format(&format).unwrap_or_else(|_| secs.to_string())
}

fn urgency_name(urgency: &str) -> &'static str {
    match urgency {
        "khan" => "khẩn",
        "thuong-khan" => "thượng khẩn",
        "hoa-toc" => "hỏa tốc",
        "hoa-toc-hen-gio" => "hỏa tốc hẹn giờ",
        _ => "thường",
    }
}

fn class_name(classification: &str) -> &'static str {
    match classification {
        "mat" => "mật",
        "toi-mat" => "tối mật",
        "tuyet-mat" => "tuyệt mật",
        _ => "",
    }
}

/// The verification verdict and delivery state of a copy, in one line.
fn verdict(c: &CopyView) -> (String, Color) {
    let reason = c.reason.clone().unwrap_or_default();
    if c.workflow.as_deref() == Some("recalled") {
        return (
            "✗ recalled: its files were destroyed at the recipient".into(),
            Color::Red,
        );
    }
    match (c.incoming(), c.status.as_str()) {
        (true, "registered") => (
            "✓ verified on arrival: signature, signer's certificate path and every file".into(),
            Color::Green,
        ),
        (true, "refused") => (format!("✗ refused: {reason}"), Color::Red),
        (true, "kept_aside") => (
            "✗ kept aside: not opened after 3 attempts".into(),
            Color::Red,
        ),
        (true, _) => ("… received, not yet opened".into(), Color::Yellow),
        (false, "delivered") => (
            "✓ delivered: the recipient's signed receipt verified".into(),
            Color::Green,
        ),
        (false, "failed") => (format!("✗ failed: {reason}"), Color::Red),
        (false, "sent") => (
            format!(
                "→ handed over, held by {}",
                c.held_by.as_deref().unwrap_or("the next hop")
            ),
            Color::Yellow,
        ),
        (false, _) => (
            format!("… queued, {} attempts so far", c.attempts),
            Color::Yellow,
        ),
    }
}

fn label(name: &str) -> Span<'static> {
    Span::styled(
        format!("{name:<11}"),
        Style::new().add_modifier(Modifier::BOLD),
    )
}

fn field_line(name: &str, value: String) -> TextLine<'static> {
    TextLine::from(vec![label(name), Span::raw(super::text::clean(&value))])
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

/// The detail view's text.
pub(crate) fn detail_lines(
    copies: &[CopyView],
    selected: usize,
    header: Option<&Value>,
) -> Vec<TextLine<'static>> {
    let Some(c) = copies.get(selected).or(copies.first()) else {
        return vec![];
    };
    let mut lines = Vec::new();
    let mut title = format!("Số {}", c.code());
    if let Some(h) = header {
        let kind = str_at(h, &["document_type", "name"]);
        if !kind.is_empty() {
            title = format!("{kind} {title}");
        }
    }
    title += &format!(" · {}", urgency_name(&c.urgency));
    if let Some(class) = c
        .classification
        .as_deref()
        .map(class_name)
        .filter(|n| !n.is_empty())
    {
        title += &format!(" · {class}");
    }
    lines.push(TextLine::styled(
        title,
        row_style(c).add_modifier(Modifier::BOLD),
    ));
    lines.push(field_line(
        "Trích yếu",
        c.subject.clone().unwrap_or_default(),
    ));
    let (text, colour) = verdict(c);
    lines.push(TextLine::styled(text, Style::new().fg(colour)));
    let from_name = header
        .map(|h| str_at(h, &["from", "organ_name"]))
        .unwrap_or_default();
    lines.push(field_line("From", format!("{} {from_name}", c.from)));
    if c.incoming() || copies.len() == 1 {
        lines.push(field_line("To", c.to.clone()));
    }
    if let Some(n) = &c.incoming_number {
        lines.push(field_line("Số đến", n.clone()));
    }
    let when = if c.incoming() { "Arrived" } else { "Submitted" };
    lines.push(field_line(when, local_time(c.created)));
    if let Some(h) = header {
        let signer = format!(
            "{} {} ({})",
            str_at(h, &["signer", "competence"]),
            str_at(h, &["signer", "full_name"]),
            str_at(h, &["signer", "position"])
        );
        lines.push(field_line("Signed", signer));
        lines.push(field_line(
            "Issued",
            format!(
                "{}, {}",
                str_at(h, &["promulgation", "place"]),
                str_at(h, &["promulgation", "date"])
            ),
        ));
        for f in h["files"].as_array().into_iter().flatten() {
            let size = f["size"].as_u64().unwrap_or_default();
            lines.push(field_line(
                "File",
                format!("{} ({size} bytes)", str_at(f, &["name"])),
            ));
        }
    }
    if let Some(due) = &c.due_date {
        let mut text = due.clone();
        if c.overdue {
            text += " — OVERDUE";
        }
        lines.push(TextLine::from(vec![
            label("Due"),
            Span::styled(
                text,
                if c.overdue {
                    Style::new().fg(Color::Red)
                } else {
                    Style::new()
                },
            ),
        ]));
    }
    if let Some(business) = &c.business {
        lines.push(field_line("Business", business.clone()));
    }
    if copies.len() > 1 {
        lines.push(TextLine::styled(
            format!("Copies ({})", copies.len()),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        for (i, copy) in copies.iter().enumerate() {
            let mark = if i == selected { "▶" } else { " " };
            let mut text = format!("{mark} {} {}", copy.to, copy.status);
            if let Some(w) = &copy.workflow {
                text += &format!(" · {w}");
            }
            if let Some(who) = &copy.assigned_to {
                text += &format!(" ({who})");
            }
            let style = if i == selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
            };
            lines.push(TextLine::styled(text, style));
        }
    } else if let Some(w) = c.workflow() {
        let mut text = w.to_owned();
        if let Some(who) = &c.assigned_to {
            text += &format!(" ({who})");
        }
        lines.push(field_line("Workflow", text));
    }
    if let Some(recall) = &c.recall {
        let answer = match recall.answer.as_deref() {
            Some("15") => "agreed (15)",
            Some("16") => "refused (16)",
            _ => "waiting for an answer",
        };
        lines.push(field_line(
            "Recall",
            format!("{} — {answer}: {}", local_time(recall.time), recall.reason),
        ));
    }
    let whose = if copies.len() > 1 {
        format!("Notices of {}", c.to)
    } else {
        "Notices".to_owned()
    };
    lines.push(TextLine::styled(
        whose,
        Style::new().add_modifier(Modifier::BOLD),
    ));
    if c.notices.is_empty() {
        lines.push(TextLine::styled(
            "  none yet",
            Style::new().fg(Color::DarkGray),
        ));
    }
    for n in &c.notices {
        let mut text = format!(
            "  {} {} {} {}",
            local_time(n.time),
            n.status,
            notice_name(&n.status),
            n.by
        );
        if let Some(reason) = n.reason.as_deref().filter(|r| *r != "-") {
            text += &format!(" — {reason}");
        }
        lines.push(TextLine::raw(super::text::clean(&text)));
    }
    if !c.ledger.is_empty() {
        lines.push(TextLine::styled(
            "Ledger (sổ nhật ký)",
            Style::new().add_modifier(Modifier::BOLD),
        ));
        for e in &c.ledger {
            let text = format!("  #{} {} {} {}", e.index, e.time, e.kind, e.actor);
            lines.push(TextLine::raw(super::text::clean(&text)));
        }
    }
    lines
}

fn render_form(form: &Form, frame: &mut Frame<'_>, body: Rect) {
    const LABEL: usize = 16;
    let w = usize::from(body.width);
    let room = w.saturating_sub(LABEL + 1);
    let mut lines = vec![TextLine::styled(
        "New dispatch",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    let mut cursor = None;
    let fields = [
        (Field::To, "To"),
        (Field::Subject, "Subject"),
        (Field::Number, "Number (số)"),
        (Field::Notation, "Notation"),
        (Field::Urgency, "Urgency"),
        (Field::Classification, "Classification"),
        (Field::Files, "Files"),
        (Field::Due, "Due date"),
    ];
    for (field, name) in fields {
        let focused = form.field() == field;
        let (before, input): (String, Option<&str>) = match field {
            Field::To => {
                let chosen: Vec<&str> = form.to.iter().map(|a| a.organ_code.as_str()).collect();
                let mut before = chosen.join(", ");
                if !before.is_empty() {
                    before += ", ";
                }
                (before, Some(form.to_query.as_str()))
            }
            Field::Subject => (String::new(), Some(form.subject.as_str())),
            Field::Number => (String::new(), Some(form.number.as_str())),
            Field::Notation => (String::new(), Some(form.notation.as_str())),
            Field::Urgency => (
                format!("◀ {} ▶", URGENCIES[form.urgency % URGENCIES.len()]),
                None,
            ),
            Field::Classification => (
                format!(
                    "◀ {} ▶",
                    CLASSIFICATIONS[form.classification % CLASSIFICATIONS.len()]
                ),
                None,
            ),
            Field::Files => {
                let mut before = form.files.join(", ");
                if !before.is_empty() {
                    before += ", ";
                }
                (before, Some(form.file_input.as_str()))
            }
            Field::Due => (
                String::new(),
                Some(if form.due.is_empty() && !focused {
                    "YYYY-MM-DD, optional"
                } else {
                    form.due.as_str()
                }),
            ),
        };
        let shown = tail(&format!("{before}{}", input.unwrap_or_default()), room);
        let label_style = if focused {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        if focused && input.is_some() {
            cursor = Some((LABEL + 1 + width(&shown), lines.len()));
        }
        lines.push(TextLine::from(vec![
            Span::styled(fit(name, LABEL), label_style),
            Span::raw(" "),
            Span::raw(shown),
        ]));
        if field == Field::To && focused {
            for (i, agency) in form.matches.iter().take(5).enumerate() {
                let text = fit(&format!("  {} {}", agency.organ_code, agency.name), room);
                let style = if i == form.pick {
                    Style::new().add_modifier(Modifier::REVERSED)
                } else {
                    Style::new().fg(Color::Cyan)
                };
                lines.push(TextLine::from(vec![
                    Span::raw(" ".repeat(LABEL + 1)),
                    Span::styled(text, style),
                ]));
            }
        }
    }
    if let Some((x, y)) = cursor {
        let x = (x.min(w.saturating_sub(1))) as u16;
        frame.set_cursor_position(Position::new(body.x + x, body.y + y as u16));
    }
    frame.render_widget(Paragraph::new(lines), body);
}

fn render_tenants(list: Option<&[Tenant]>, pick: usize, frame: &mut Frame<'_>, body: Rect) {
    let mut lines = vec![TextLine::styled(
        "Act for which agency?",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    match list {
        None => lines.push(TextLine::raw("loading…")),
        Some([]) => lines.push(TextLine::raw("no tenants")),
        Some(tenants) => {
            for (i, t) in tenants.iter().enumerate() {
                let own = if t.own { " (host)" } else { "" };
                let text = fit(
                    &format!("{} {}{own}", t.organ_code, t.name),
                    usize::from(body.width),
                );
                let style = if i == pick {
                    Style::new().add_modifier(Modifier::REVERSED)
                } else {
                    Style::new()
                };
                lines.push(TextLine::styled(text, style));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines), body);
}
