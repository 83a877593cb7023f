//! `vdx tui`: the clerk's (văn thư's) terminal screen over the node's local socket API, a client
//! like any office system (`docs/local-api.md`). One job per module:
//!
//! - [`app`]: the state and what each key, answer and live event does to it (no I/O);
//! - [`view`]: drawing that state (no I/O);
//! - [`driver`]: carrying out the app's commands against the API and streaming `GET /v1/events`;
//! - [`model`], [`sse`], [`text`]: the API's answers, the event stream's lines, cells of text.
//!
//! The loop here only moves events between the terminal, the driver and the app.

use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use anyhow::{anyhow, Result};
use crossterm::event::{self as term, Event as TermEvent};
use ratatui::backend::Backend;
use ratatui::Terminal;
use vdx_protocol::OrganCode;

mod app;
mod driver;
mod model;
mod sse;
mod text;
mod view;

use app::{App, Command, Event};

/// How often the app is told a second passed (it polls the lists with it when the node serves
/// no live events).
const TICK: Duration = Duration::from_secs(1);

/// Runs the TUI for the node of `home`, acting for `tenant` (or the caller's only agency) until
/// the clerk quits.
pub(crate) fn run(home: &Path, tenant: Option<&OrganCode>) -> Result<ExitCode> {
    // A progress bar drawn on the terminal the TUI owns would scribble over it.
    crate::progress::silence();
    let (events, inbox) = std::sync::mpsc::channel();
    let commands = driver::spawn(home.to_owned(), events.clone());
    let mut terminal = ratatui::try_init()?;
    let size = terminal.size()?;
    let (mut app, start) = App::new(tenant.map(ToString::to_string), (size.width, size.height));
    let keys = events.clone();
    std::thread::spawn(move || loop {
        let event = match term::read() {
            Ok(TermEvent::Key(key)) => Event::Key(key),
            Ok(TermEvent::Resize(w, h)) => Event::Resize(w, h),
            Ok(_) => continue,
            Err(_) => break,
        };
        if keys.send(event).is_err() {
            break;
        }
    });
    std::thread::spawn(move || loop {
        std::thread::sleep(TICK);
        if events.send(Event::Tick).is_err() {
            break;
        }
    });
    let result = run_loop(&mut terminal, &mut app, start, &inbox, &commands);
    ratatui::restore();
    result.map(|()| ExitCode::SUCCESS)
}

/// The event loop: draws, waits for the next event (and takes every one already waiting), lets
/// the app handle them and hands its commands to the driver, until the app quits. Generic over
/// the backend so that it runs the same on a `TestBackend`.
pub(crate) fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    start: Vec<Command>,
    inbox: &Receiver<Event>,
    commands: &Sender<Command>,
) -> Result<()>
where
    B::Error: Send + Sync + 'static,
{
    for command in start {
        commands
            .send(command)
            .map_err(|_| anyhow!("the API driver stopped"))?;
    }
    while !app.quit {
        terminal
            .draw(|frame| view::render(app, frame))
            .map_err(anyhow::Error::new)?;
        let first = inbox
            .recv()
            .map_err(|_| anyhow!("the event sources stopped"))?;
        for event in std::iter::once(first).chain(inbox.try_iter()) {
            for command in app.handle(event) {
                commands
                    .send(command)
                    .map_err(|_| anyhow!("the API driver stopped"))?;
            }
            if app.quit {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use unicode_width::UnicodeWidthStr;

    use super::app::{Answer, Tab};
    use super::model::CopyView;
    use super::*;

    fn copy(id: &str, mid: &str, subject: &str, urgency: &str, to: &str) -> CopyView {
        CopyView {
            id: id.into(),
            message_id: Some(mid.into()),
            direction: "incoming".into(),
            status: "registered".into(),
            from: "000.00.00.G22".into(),
            to: to.into(),
            subject: Some(subject.into()),
            number: Some("30".into()),
            notation: Some("NĐ-CP".into()),
            urgency: urgency.into(),
            classification: Some("none".into()),
            incoming_number: Some(format!("{}/2026", id.len())),
            due_date: Some("2026-12-10".into()),
            ..CopyView::default()
        }
    }

    const SUBJECTS: [&str; 5] = [
        "Về việc triển khai Nghị định 30/2020/NĐ-CP",
        "Thông báo khẩn: phòng chống bão số 3",
        // Decomposed: the marks are combining characters.
        "Ho\u{0323}p ba\u{0300}n ve\u{0302}\u{0300} ke\u{0302}\u{0301} hoa\u{0323}ch",
        "会議の件 (wide characters)",
        "Ngắn",
    ];

    /// The text of row `y` and, for each character's byte offset, the cell it starts in.
    fn row_text(buf: &Buffer, y: u16) -> (String, Vec<(usize, u16)>) {
        let mut text = String::new();
        let mut starts = Vec::new();
        let mut x = 0;
        while x < buf.area.width {
            let symbol = buf[(x, y)].symbol();
            starts.push((text.len(), x));
            text.push_str(symbol);
            x += UnicodeWidthStr::width(symbol).max(1) as u16;
        }
        (text, starts)
    }

    /// The cell where `needle` starts on row `y`.
    fn column_of(buf: &Buffer, y: u16, needle: &str) -> Option<u16> {
        let (text, starts) = row_text(buf, y);
        let at = text.find(needle)?;
        starts.iter().find(|(b, _)| *b == at).map(|(_, x)| *x)
    }

    fn app_with(tab: Tab, rows: Vec<CopyView>) -> App {
        let (mut app, _) = App::new(None, (80, 24));
        app.tab = tab;
        let answer = Answer::List {
            tab,
            offset: 0,
            limit: 20,
            q: String::new(),
            result: Ok((rows, None)),
        };
        app.handle(Event::Answer {
            generation: 0,
            answer: Box::new(answer),
        });
        app
    }

    fn draw(app: &App) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| view::render(app, f)).unwrap();
        terminal.backend().buffer().clone()
    }

    #[test]
    fn the_real_loop_and_driver_keep_running_without_a_daemon_and_say_why() {
        use std::sync::mpsc::channel;
        let home = tempfile::tempdir().unwrap();
        let (to_test, from_driver) = channel();
        let (to_loop, loop_inbox) = channel();
        let commands = driver::spawn(home.path().to_owned(), to_test);
        let (mut app, start) = App::new(None, (80, 24));
        let runner = std::thread::spawn(move || {
            let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
            let result = run_loop(&mut terminal, &mut app, start, &loop_inbox, &commands);
            (app, terminal.backend().buffer().clone(), result)
        });
        // The driver's events go through until the inbox's answer; then the sources end, after
        // the loop has drawn what that answer did.
        loop {
            let event = from_driver.recv_timeout(Duration::from_secs(30)).unwrap();
            let inbox = matches!(&event, Event::Answer { answer, .. } if matches!(**answer, Answer::List { .. }));
            to_loop.send(event).unwrap();
            if inbox {
                break;
            }
        }
        drop(to_loop);
        let (app, buf, result) = runner.join().unwrap();
        assert!(result
            .unwrap_err()
            .to_string()
            .contains("event sources stopped"));
        let (text, error) = app.status.clone().unwrap();
        assert!(
            error && text.starts_with("inbox: vdxd is not running"),
            "{text}"
        );
        assert!(row_text(&buf, 22)
            .0
            .starts_with("inbox: vdxd is not running"));
        assert!(row_text(&buf, 23).0.contains("Enter open"));
        assert!(!app.quit);
    }

    #[test]
    fn vietnamese_rows_line_up_at_80_columns() {
        let rows: Vec<CopyView> = SUBJECTS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let urgency = ["thuong", "hoa-toc", "khan", "thuong-khan", "thuong"][i];
                copy(
                    &"a".repeat(i + 1),
                    &format!("m{i}"),
                    s,
                    urgency,
                    "000.00.00.H41",
                )
            })
            .collect();
        let app = app_with(Tab::Inbox, rows);
        let buf = draw(&app);
        let cols = view::columns(Tab::Inbox, 80);
        let mut starts = vec![0u16];
        for c in &cols[..cols.len() - 1] {
            starts.push(starts.last().unwrap() + c.width as u16 + 1);
        }
        // The header's titles and every row's cells start at the same columns.
        assert_eq!(column_of(&buf, 1, "SỐ ĐẾN"), Some(starts[1]));
        assert_eq!(column_of(&buf, 1, "TRÍCH YẾU"), Some(starts[4]));
        assert_eq!(column_of(&buf, 1, "HẠN"), Some(starts[6]));
        for (i, subject) in SUBJECTS.iter().enumerate() {
            let y = 2 + i as u16;
            let (text, _) = row_text(&buf, y);
            assert_eq!(
                column_of(&buf, y, "000.00.00.G22"),
                Some(starts[3]),
                "{text}"
            );
            let head: String = subject.chars().take(3).collect();
            assert_eq!(column_of(&buf, y, &head), Some(starts[4]), "{text}");
            assert_eq!(column_of(&buf, y, "arrived"), Some(starts[5]), "{text}");
            assert_eq!(column_of(&buf, y, "10/12"), Some(starts[6]), "{text}");
            // The row fills the screen exactly: no cell past 80.
            let line = view::row(Tab::Inbox, &app.list(Tab::Inbox).lines[i], &cols, false);
            assert_eq!(line.width(), 80, "{text}");
        }
        // A long subject is cut with an ellipsis, a decomposed one keeps its marks.
        assert!(row_text(&buf, 2).0.contains("Về việc triển khai …"));
        assert!(row_text(&buf, 4).0.contains("Ho\u{0323}p"));
        // Hỏa tốc stands out: its mark, and red.
        assert_eq!(column_of(&buf, 3, "HT"), Some(0));
        assert_eq!(buf[(0, 3)].fg, ratatui::style::Color::Red);
        // The keys of the list on the bottom line.
        let (keys, _) = row_text(&buf, 23);
        assert!(
            keys.contains("Enter open") && keys.contains("n new") && keys.contains("q quit"),
            "{keys}"
        );
    }

    #[test]
    fn an_outgoing_dispatch_to_many_is_one_line_with_its_counts() {
        let mut rows = Vec::new();
        for (i, (state, workflow)) in [
            ("delivered", Some("done")),
            ("delivered", Some("done")),
            ("sent", None),
        ]
        .into_iter()
        .enumerate()
        {
            let mut c = copy(
                &format!("c{i}"),
                "m1",
                SUBJECTS[1],
                "hoa-toc",
                &format!("000.00.00.H4{i}"),
            );
            c.direction = "outgoing".into();
            c.status = state.into();
            c.workflow = workflow.map(str::to_owned);
            c.overdue = i == 2;
            rows.push(c);
        }
        let app = app_with(Tab::Outbox, rows);
        let buf = draw(&app);
        let cols = view::columns(Tab::Outbox, 80);
        let state_at: u16 = cols[..4].iter().map(|c| c.width as u16 + 1).sum();
        let (text, _) = row_text(&buf, 2);
        assert!(text.contains("3 nơi nhận"), "{text}");
        assert_eq!(
            column_of(&buf, 2, "2 done·1 sent"),
            Some(state_at),
            "{text}"
        );
        assert!(row_text(&buf, 3).0.trim().is_empty());
        // Overdue: the due date in white on red.
        let due_at = 80 - 5;
        assert_eq!(buf[(due_at, 2)].bg, ratatui::style::Color::Red);
    }

    #[test]
    fn the_detail_shows_the_verdict_the_history_and_only_allowed_actions() {
        let mut c = copy("a1", "m1", SUBJECTS[0], "khan", "000.00.00.H41");
        c.workflow = Some("registered".into());
        c.notices = vec![super::model::Notice {
            status: "03".into(),
            by: "000.00.00.H41".into(),
            time: 1_796_000_000,
            reason: None,
        }];
        let mut app = app_with(Tab::Inbox, vec![c]);
        app.handle(Event::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Enter,
        )));
        let buf = draw(&app);
        let all: String = (0..24).map(|y| row_text(&buf, y).0 + "\n").collect();
        assert!(all.contains("✓ verified on arrival"), "{all}");
        assert!(all.contains("03 đã tiếp nhận 000.00.00.H41"), "{all}");
        let keys = row_text(&buf, 23).0;
        assert!(
            keys.contains("a assign 04") && keys.contains("x refuse 02"),
            "{keys}"
        );
        assert!(
            !keys.contains("register 03") && !keys.contains("done 06"),
            "{keys}"
        );
    }
}
