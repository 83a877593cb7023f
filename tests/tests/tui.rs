//! `vdx tui` in a real terminal: tmux (80×24) runs the real binary against two real daemons, the
//! test types keys into it and reads the screen back, as a clerk would see it. Node A's clerk
//! sends a dispatch from the form; node B's screen shows it arrive without a key pressed (live
//! events, or the TUI's poll while the node serves none); B registers it (03), assigns it (04)
//! and marks it done (06); A's screen shows each step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly by design.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use vdx_tests::daemon::{homes, Daemon};
use vdx_tests::{vdx_bin, Session};

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const SUBJECT: &str = "Thông báo khẩn: phòng chống bão số 3";
/// The file sent: a few bytes, Vietnamese included.
const CONTENT: &str = "%PDF-1.4\n% công văn\n";
/// Long enough for a delivery across two daemons on a loaded machine; a pass is usually seconds.
const LIMIT: Duration = Duration::from_secs(90);

/// A private tmux server (its own socket in the session directory), killed when dropped.
struct Tmux {
    socket: PathBuf,
    dir: PathBuf,
}

impl Tmux {
    fn new(s: &Session) -> Self {
        Self {
            socket: s.path("tmux.sock"),
            dir: s.dir().to_owned(),
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux runs (scripts/install-deps.sh installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `vdx --home HOME tui` in a new 80×24 window named `name`; when it ends, the window says how.
    fn start(&self, name: &str, home: &str) {
        let command = format!(
            "env -u VDX_HOME -u VDX_TENANT TERM=xterm-256color '{}' --home {home} tui; echo EXITED $?; sleep 600",
            vdx_bin().display()
        );
        let dir = self.dir.to_string_lossy().into_owned();
        self.tmux(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "-s",
            name,
            "-c",
            &dir,
            &command,
        ]);
    }

    /// Presses keys by tmux's names (`Enter`, `Tab`, `F2`, `Right`, or a character).
    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Types `text` as it is.
    fn type_text(&self, name: &str, text: &str) {
        self.tmux(&["send-keys", "-t", name, "-l", text]);
    }

    fn screen(&self, name: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-t", name])
    }

    /// Waits until `name`'s screen satisfies `done`; returns it, or panics showing it.
    fn wait(&self, name: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let screen = self.screen(name);
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {name}'s screen for {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_for(&self, name: &str, needle: &str) -> String {
        self.wait(name, needle, |screen| screen.contains(needle))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The screen's line that contains `needle`.
fn line_with<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(needle))
}

/// Sends notice `key` from B's open detail and waits until B's status line says the node took it.
fn notice(t: &Tmux, key: &str, code: &str, input: Option<&str>) {
    t.keys("b", &[key]);
    if let Some(input) = input {
        t.wait_for("b", "assign to (04):");
        t.type_text("b", input);
        t.keys("b", &["Enter"]);
    }
    let what = format!("notice {code}");
    let screen = t.wait("b", &what, |screen| {
        screen.contains(&format!("{what}: done")) || screen.contains(&format!("{what} ("))
    });
    assert!(
        screen.contains(&format!("{what}: done")),
        "the node refused {what}:\n{screen}"
    );
}

#[test]
fn a_clerk_sends_from_the_form_and_the_other_sees_it_arrive_and_moves_it_on() {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is needed: scripts/install-deps.sh installs it");
    }
    let s = Session::new();
    homes(&s, &[("a", G22), ("b", H41)]);
    let _a = Daemon::start(&s, "a");
    let _b = Daemon::start(&s, "b");
    let file = s.write("cv.pdf", CONTENT.as_bytes());
    let t = Tmux::new(&s);
    t.start("a", "a");
    t.start("b", "b");
    for name in ["a", "b"] {
        let screen = t.wait_for(name, "0 dispatches");
        assert!(
            screen.contains("SỐ ĐẾN") && screen.contains("TRÍCH YẾU"),
            "{screen}"
        );
        assert!(
            screen.contains("Enter open") && screen.contains("q quit"),
            "{screen}"
        );
    }

    // A: the send form. The recipient is looked up in the directory as it is typed.
    t.keys("a", &["n"]);
    t.wait_for("a", "New dispatch");
    t.type_text("a", H41);
    let screen = t.wait("a", "the directory's answer", |screen| {
        screen.lines().filter(|l| l.contains(H41)).count() >= 2 || screen.contains("directory (")
    });
    assert!(
        line_with(&screen, &format!("  {H41} b")).is_some(),
        "the directory search found {H41}:\n{screen}"
    );
    t.keys("a", &["Enter", "Tab"]);
    t.type_text("a", SUBJECT);
    t.keys("a", &["Tab"]);
    t.type_text("a", "12");
    t.keys("a", &["Tab"]);
    t.type_text("a", "UBND-VP");
    t.keys("a", &["Tab", "Right", "Right", "Right", "Tab", "Tab"]);
    t.type_text("a", &file.to_string_lossy());
    t.keys("a", &["Enter"]);
    let form = t.wait_for("a", "hoa-toc");
    assert!(
        form.contains(&format!("{H41}, ")) || form.contains(H41),
        "{form}"
    );
    t.keys("a", &["F2"]);
    let screen = t.wait_for("a", "queued dispatch");
    assert!(
        screen.contains(" Outbox (1) "),
        "the outbox is shown after sending:\n{screen}"
    );
    let row = line_with(&screen, H41).unwrap_or_default().to_owned();
    assert!(
        row.starts_with("HT") && row.contains("12/UBND-VP"),
        "{screen}"
    );

    // B: the dispatch appears without a key pressed, hỏa tốc marked.
    let screen = t.wait_for("b", "Thông báo khẩn");
    let row = line_with(&screen, "Thông báo khẩn").unwrap();
    assert!(
        row.starts_with("HT") && row.contains(G22) && row.contains("1/2026"),
        "{screen}"
    );
    assert!(screen.contains(" Inbox (1) "), "{screen}");

    // A: delivered, without a key pressed.
    t.wait("a", "delivered", |screen| {
        line_with(screen, H41).is_some_and(|l| l.contains("delivered") || l.contains("arrived"))
    });

    // B: the detail, with the verdict and only 03 and 02 offered.
    t.keys("b", &["Enter"]);
    // The header (signer, files) comes with the dispatch's own answer, after the list's fields.
    let screen = t.wait_for("b", "cv.pdf (22 bytes)");
    assert!(
        screen.contains(SUBJECT) && screen.contains("verified on arrival"),
        "{screen}"
    );
    assert!(
        line_with(&screen, "Số đến").is_some_and(|l| l.contains("1/2026")),
        "{screen}"
    );
    let keys = screen.lines().last().unwrap_or_default();
    assert!(
        keys.contains("r register 03") && keys.contains("x refuse 02"),
        "{screen}"
    );
    assert!(
        !keys.contains("done 06") && keys.contains("f fetch files"),
        "{screen}"
    );

    // B: fetch the files into a directory.
    t.keys("b", &["f"]);
    t.wait_for("b", "fetch the files into directory: vdx-");
    t.keys("b", &["BSpace"; 12]);
    t.type_text("b", "fetched");
    t.keys("b", &["Enter"]);
    t.wait_for("b", "1 files written into fetched");
    assert_eq!(s.read("fetched/cv.pdf"), CONTENT.as_bytes());

    // B: 03, 04 to someone, 06 — each offered only once the state allows it.
    notice(&t, "r", "03", None);
    {
        let screen = t.wait_for("b", "a assign 04");
        assert!(
            !screen
                .lines()
                .last()
                .unwrap_or_default()
                .contains("register 03"),
            "{screen}"
        );
        notice(&t, "a", "04", Some("Nguyễn Văn A"));
        t.wait_for("b", "d done 06");
        notice(&t, "d", "06", None);
        let screen = t.wait_for("b", "06 hoàn thành");
        assert!(
            screen.contains("03 đã tiếp nhận") && screen.contains("04 phân công"),
            "{screen}"
        );
        assert!(
            !screen
                .lines()
                .last()
                .unwrap_or_default()
                .contains("assign 04"),
            "{screen}"
        );

        // A: the state follows on the list without a key pressed, then the whole history.
        t.wait("a", "done on the outbox line", |screen| {
            line_with(screen, H41).is_some_and(|l| l.contains("done"))
        });
        t.keys("a", &["Enter"]);
        let screen = t.wait_for("a", "06 hoàn thành");
        for step in [
            "01 đã đến",
            "03 đã tiếp nhận",
            "04 phân công",
            "06 hoàn thành",
        ] {
            assert!(screen.contains(step), "{step}:\n{screen}");
        }
        assert!(screen.contains("Nguyễn Văn A"), "{screen}");
        t.keys("a", &["Escape"]);
    }

    // A: the search narrows the list (by the node's `q`, or the TUI's own filter).
    t.keys("a", &["/"]);
    t.type_text("a", "bão");
    t.keys("a", &["Enter"]);
    t.wait_for("a", "search: bão");
    t.keys("a", &["/", "BSpace", "BSpace", "BSpace"]);
    t.type_text("a", "không có");
    t.keys("a", &["Enter"]);
    t.wait_for("a", "nothing matches the search");

    // Quitting leaves the terminal with exit code 0.
    // B is on the detail: `q` there goes back to the list, where it quits.
    t.keys("b", &["q"]);
    for name in ["a", "b"] {
        t.wait_for(name, "Enter open");
        t.keys(name, &["q"]);
        t.wait_for(name, "EXITED 0");
    }
}
