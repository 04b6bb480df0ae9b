//! Progress display: bars on a terminal (replayed through [`Screen`]), one line per blob on a
//! pipe or with `--progress plain`, nothing with `-q`.

use super::*;

/// How long the [`slow_proxy`] pauses each large blob body.
const PAUSE: Duration = Duration::from_millis(1200);

/// A proxy in front of `registry` that sends the first quarter of every blob body larger
/// than 64 KiB, pauses for [`PAUSE`], then sends the rest: a download that lasts long
/// enough for several progress redraws (bars tick every 200 ms).
fn slow_proxy(registry: &Registry) -> ScriptedServer {
    let upstream = registry.url();
    ScriptedServer::start(move |req| {
        let response: ScriptedResponse = forward(req, &upstream);
        let large = response.body.len() > 64 << 10;
        if req.method == "GET" && req.path().contains("/blobs/") && response.status == 200 && large
        {
            let quarter = response.body.len() / 4;
            response.stall_after(quarter, PAUSE)
        } else {
            response
        }
    })
}

/// `sha256:` and the first 12 hex digits: how progress lines name a blob.
fn short_name(bytes: &[u8]) -> String {
    digest_of(bytes)[..19].to_string()
}

/// A minimal terminal: enough of VT100 to replay what the progress bars write (text with
/// deferred wrap at the right margin, CR, LF, cursor up/down, erase in line). Any other
/// control sequence fails the test, so a change in how bars are drawn is noticed.
struct Screen {
    width: usize,
    lines: Vec<Vec<char>>,
    row: usize,
    col: usize,
    wrap_pending: bool,
}

impl Screen {
    /// The screen's lines (trailing spaces removed) after `bytes` were written to it.
    fn replay(bytes: &[u8], width: usize) -> Vec<String> {
        let mut screen = Screen {
            width,
            lines: vec![Vec::new()],
            row: 0,
            col: 0,
            wrap_pending: false,
        };
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    screen.col = 0;
                    screen.wrap_pending = false;
                }
                '\n' => screen.move_to(screen.row + 1),
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "unexpected escape sequence");
                    let mut params = String::new();
                    let command = loop {
                        match chars.next() {
                            Some(c) if c.is_ascii_digit() || c == ';' || c == '?' => params.push(c),
                            Some(c) => break c,
                            None => panic!("escape sequence cut short"),
                        }
                    };
                    screen.control(&params, command);
                }
                c if c.is_control() => panic!("unexpected control character {c:?}"),
                c => screen.put(c),
            }
        }
        screen
            .lines
            .iter()
            .map(|l| l.iter().collect::<String>().trim_end().to_string())
            .collect()
    }

    fn move_to(&mut self, row: usize) {
        self.row = row;
        while self.lines.len() <= row {
            self.lines.push(Vec::new());
        }
        self.wrap_pending = false;
    }

    fn control(&mut self, params: &str, command: char) {
        let n = params.parse::<usize>().unwrap_or(1).max(1);
        match (command, params) {
            ('A', _) => self.move_to(self.row.saturating_sub(n)),
            ('B', _) => self.move_to(self.row + n),
            ('K', "" | "0") => self.lines[self.row].truncate(self.col),
            ('K', "2") => self.lines[self.row].clear(),
            ('G', _) => {
                self.col = n - 1;
                self.wrap_pending = false;
            }
            ('m', _) => {}
            ('h' | 'l', "?25") => {}
            _ => panic!("unexpected control sequence ESC[{params}{command}"),
        }
    }

    fn put(&mut self, c: char) {
        if self.wrap_pending {
            self.move_to(self.row + 1);
            self.col = 0;
        }
        let line = &mut self.lines[self.row];
        while line.len() <= self.col {
            line.push(' ');
        }
        line[self.col] = c;
        if self.col + 1 == self.width {
            self.wrap_pending = true;
        } else {
            self.col += 1;
        }
    }
}

/// The non-blank lines of a replayed screen.
fn visible(bytes: &[u8]) -> Vec<String> {
    Screen::replay(bytes, TTY_WIDTH)
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The pieces of terminal output between carriage returns, line feeds and escapes: each
/// drawn bar line is one of them.
fn frames(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split(['\r', '\n', '\x1b'])
        .map(str::to_string)
        .collect()
}

/// Whether a frame is a drawn transfer bar: `NAME [===>   ] DONE/TOTAL RATE/s eta …`.
fn is_bar(frame: &str) -> bool {
    let (Some(open), Some(close)) = (frame.find(" ["), frame.find("] ")) else {
        return false;
    };
    open < close && frame[close..].contains("B/s") && frame.contains(" eta ")
}

/// Bytes of a human size such as `206 B`, `1.50 MiB`.
fn human_bytes(number: &str, unit: &str) -> f64 {
    let n: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {number}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unknown unit {unit}"),
    };
    n * scale
}

/// (done, total) bytes of a bar frame: `… ] 1.50 MiB/3.00 MiB …`.
fn bar_bytes(frame: &str) -> (f64, f64) {
    let after = &frame[frame.find("] ").expect("a bar") + 2..];
    let (done, rest) = after.split_once('/').expect("DONE/TOTAL");
    let done: Vec<&str> = done.split_whitespace().collect();
    let total: Vec<&str> = rest.split_whitespace().take(2).collect();
    (
        human_bytes(done[0], done[1]),
        human_bytes(total[0], total[1]),
    )
}

/// A registry holding `tools/big:1`, a one-layer artifact of 2 MiB, behind a [`slow_proxy`].
struct BigArtifact {
    _registry: Registry,
    proxy: ScriptedServer,
    bytes: Vec<u8>,
}

impl BigArtifact {
    fn new(s: &Sandbox) -> BigArtifact {
        let registry = Registry::start();
        let bytes = pseudo_random_bytes(2 << 20, 7);
        let file = s.work("big.bin");
        fs::write(&file, &bytes).unwrap();
        s.run(&[
            "push",
            path_str(&file),
            &format!("{}/tools/big:1", registry.host()),
        ])
        .success();
        let proxy = slow_proxy(&registry);
        BigArtifact {
            _registry: registry,
            proxy,
            bytes,
        }
    }

    /// The artifact's reference through the proxy.
    fn reference(&self) -> String {
        format!("{}/tools/big:1", self.proxy.host())
    }
}

#[test]
fn terminal_download_draws_a_bar_and_clears_it() {
    let s = Sandbox::new();
    let big = BigArtifact::new(&s);
    let out = s.work("out.bin");
    let (code, screen) = s.run_on_terminal(&["pull", &big.reference(), "-o", path_str(&out)]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    assert_eq!(fs::read(&out).unwrap(), big.bytes, "pulled file");

    let name = short_name(&big.bytes);
    let bars: Vec<String> = frames(&screen).into_iter().filter(|f| is_bar(f)).collect();
    assert!(
        bars.iter()
            .any(|b| b.contains(&name) && b.contains("2.00 MiB")),
        "no bar for {name}: {shown:?}"
    );
    // Mid-transfer (during the pause) the bar is partly filled.
    assert!(
        bars.iter()
            .any(|b| b.contains("=>") && !b.contains(" 0 B/")),
        "no partly filled bar: {bars:#?}"
    );
    assert!(
        shown.contains("\x1b[2K"),
        "the bar is never erased: {shown:?}"
    );

    let lines = visible(&screen);
    assert_eq!(lines.len(), 2, "final screen: {lines:#?}");
    assert_eq!(lines[0], format!("downloaded {name} (2.00 MiB)"));
    assert!(
        lines[1].starts_with(&format!("wrote {}", out.display())),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| !is_bar(l)), "{lines:#?}");
}

#[test]
fn terminal_parallel_installs_draw_bars_and_leave_only_lines() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let a = publish(&s, &registry, "3.11.4", 1 << 20, false);
    let b = publish(&s, &registry, "3.12.1", 1 << 20, false);
    let proxy = slow_proxy(&registry);
    let (code, screen) = s.run_on_terminal(&[
        "sdk",
        "install",
        "python",
        "3.11",
        "3.12",
        "--registry",
        &proxy.url(),
        "--root",
        path_str(&s.root()),
    ]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    let frames = frames(&screen);
    for tarball in [&a, &b] {
        let name = short_name(tarball);
        assert!(
            frames.iter().any(|f| is_bar(f) && f.contains(&name)),
            "no bar for {name}: {shown:?}"
        );
    }
    assert!(
        frames.iter().any(|f| is_bar(f) && f.contains("total")),
        "two transfers at once draw a total bar: {shown:?}"
    );

    let lines: BTreeSet<String> = visible(&screen).into_iter().collect();
    let root = s.root();
    let expected: BTreeSet<String> = [
        format!("downloaded {} ({})", short_name(&a), human(a.len())),
        format!("downloaded {} ({})", short_name(&b), human(b.len())),
        format!(
            "installed python 3.11.4 in {}/python/3.11.4",
            root.display()
        ),
        format!(
            "installed python 3.12.1 in {}/python/3.12.1",
            root.display()
        ),
        format!("{}/python/3.11.4", root.display()),
        format!("{}/python/3.12.1", root.display()),
    ]
    .into_iter()
    .collect();
    assert_eq!(lines, expected, "final screen");
}

/// indicatif's `HumanBytes` of `n`.
fn human(n: usize) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2} KiB", n / 1024.0)
    } else {
        format!("{:.2} MiB", n / 1024.0 / 1024.0)
    }
}

#[test]
fn terminal_total_bar_never_exceeds_its_length() {
    let s = Sandbox::new();
    let registry = Registry::start();
    publish(&s, &registry, "3.11.4", 1 << 20, false);
    publish(&s, &registry, "3.12.1", 1 << 20, false);
    let proxy = slow_proxy(&registry);
    let (code, screen) = s.run_on_terminal(&[
        "sdk",
        "install",
        "python",
        "3.11",
        "3.12",
        "--registry",
        &proxy.url(),
        "--root",
        path_str(&s.root()),
    ]);
    assert_eq!(code, 0);
    let totals: Vec<(f64, f64)> = frames(&screen)
        .iter()
        .filter(|f| is_bar(f) && f.contains("total"))
        .map(|f| bar_bytes(f))
        .collect();
    assert!(!totals.is_empty(), "no total bar drawn");
    for (done, total) in &totals {
        assert!(done <= total, "total bar shows {done} of {total} bytes");
    }
    let (_, last) = totals.last().unwrap();
    // Both ~1 MiB transfers count (the display rounds to two decimals, so "2.00 MiB" can
    // stand for slightly more than 2 MiB): one alone would show about 1 MiB.
    assert!(*last >= 2.0 * 1024.0 * 1024.0, "total length {last}");
}

#[test]
fn plain_progress_prints_one_line_per_blob_and_no_escapes() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let a = publish(&s, &registry, "3.11.4", 300 << 10, false);
    let b = publish(&s, &registry, "3.12.1", 300 << 10, false);
    let url = registry.url();
    let root = s.root();
    let run = s
        .run(&[
            "sdk",
            "install",
            "python",
            "3.11",
            "3.12",
            "--registry",
            &url,
            "--root",
            path_str(&root),
        ])
        .success();
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
        "{:?}",
        run.stderr
    );
    let mut lines: Vec<&str> = run.stderr.lines().collect();
    lines.sort();
    let mut expected = vec![
        format!("downloaded {} ({})", short_name(&a), human(a.len())),
        format!("downloaded {} ({})", short_name(&b), human(b.len())),
        format!(
            "installed python 3.11.4 in {}/python/3.11.4",
            root.display()
        ),
        format!(
            "installed python 3.12.1 in {}/python/3.12.1",
            root.display()
        ),
    ];
    expected.sort();
    assert_eq!(lines, expected, "stderr");

    // A single download: one line for the blob, one for the result.
    let big = BigArtifact::new(&s);
    let out = s.work("big.out");
    let run = s
        .run(&["pull", &big.reference(), "-o", path_str(&out)])
        .success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!("downloaded {} (2.00 MiB)", short_name(&big.bytes))
    );
    assert!(lines[1].starts_with("wrote "), "{lines:#?}");
    assert!(!run.stderr.contains('\r') && !run.stderr.contains('\x1b'));
    // --progress tty on a pipe draws nothing either.
    let run = s
        .run(&[
            "pull",
            &big.reference(),
            "-o",
            path_str(&out),
            "--progress",
            "tty",
        ])
        .success();
    assert!(!run.stderr.contains('\x1b') && !run.stderr.contains('['));
}

#[test]
fn plain_progress_words_uploads_as_uploads() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let bytes = pseudo_random_bytes(100 << 10, 3);
    fs::write(s.work("tool.bin"), &bytes).unwrap();
    let run = s
        .run(&[
            "push",
            "tool.bin",
            &format!("{}/tools/tool:1", registry.host()),
        ])
        .success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.iter().all(|l| !l.starts_with("downloaded")),
        "a push downloads nothing: {lines:#?}"
    );
    let want = format!("uploaded {} ({})", short_name(&bytes), human(bytes.len()));
    assert!(lines.contains(&want.as_str()), "no {want:?} in {lines:#?}");
}

#[test]
fn a_push_that_starts_over_reports_one_whole_upload() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let bytes = pseudo_random_bytes(100 << 10, 4);
    fs::write(s.work("g.bin"), &bytes).unwrap();
    // The first PUT of the layer reaches the registry with half its body, and fails.
    let upstream = registry.url();
    let cuts = AtomicUsize::new(0);
    let layer_len = bytes.len();
    let proxy = ScriptedServer::start(move |req| {
        let layer_put = req.method == "PUT"
            && req.path().contains("/blobs/uploads/")
            && req.body.len() == layer_len;
        if layer_put && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
            forward_cut(req, &upstream, layer_len / 2)
        } else {
            forward(req, &upstream)
        }
    });
    let run = s
        .run(&["push", "g.bin", &format!("{}/t/retry:v1", proxy.host())])
        .success();
    // The failed attempt uploaded nothing, so it gets no line of its own.
    let layer = format!("uploaded {} ", short_name(&bytes));
    let uploaded: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&layer))
        .collect();
    let want = format!("uploaded {} ({})", short_name(&bytes), human(bytes.len()));
    assert_eq!(uploaded, [want.as_str()], "{}", run.stderr);
}

#[test]
fn quiet_prints_nothing_on_stderr_on_success() {
    let s = Sandbox::new();
    let registry = Registry::start();
    publish(&s, &registry, "3.11.4", 300 << 10, true);
    let url = registry.url();
    let root = s.root();
    let run = s
        .run(&[
            "sdk",
            "install",
            "python",
            "3.11",
            "-q",
            "--registry",
            &url,
            "--root",
            path_str(&root),
        ])
        .success();
    assert_eq!(run.stderr, "");
    assert_eq!(run.stdout, format!("{}/python/3.11.4\n", root.display()));

    let big = BigArtifact::new(&s);
    let out = s.work("big.out");
    let run = s
        .run(&["pull", &big.reference(), "-o", path_str(&out), "-q"])
        .success();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    assert_eq!(fs::read(&out).unwrap(), big.bytes);

    // On a terminal too: no bar, no line.
    fs::remove_file(&out).unwrap();
    let (code, screen) =
        s.run_on_terminal(&["pull", &big.reference(), "-o", path_str(&out), "--quiet"]);
    assert_eq!(code, 0, "{:?}", String::from_utf8_lossy(&screen));
    assert!(
        screen.is_empty(),
        "-q on a terminal wrote {:?}",
        String::from_utf8_lossy(&screen)
    );
    assert_eq!(fs::read(&out).unwrap(), big.bytes);

    // An error still shows with -q.
    let run = s.run(&["digest", "UPPER/case", "-q"]).expect_code(2);
    assert!(
        run.stderr.starts_with("error: invalid reference"),
        "{}",
        run.stderr
    );
}

#[test]
fn progress_flag_overrides_the_terminal() {
    let s = Sandbox::new();
    let big = BigArtifact::new(&s);
    let out = s.work("big.out");
    let name = short_name(&big.bytes);

    let (code, screen) = s.run_on_terminal(&[
        "pull",
        &big.reference(),
        "-o",
        path_str(&out),
        "--progress",
        "none",
    ]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let lines = visible(&screen);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("wrote "), "{lines:#?}");

    let (code, screen) = s.run_on_terminal(&[
        "pull",
        &big.reference(),
        "-o",
        path_str(&out),
        "--progress",
        "plain",
    ]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let lines = visible(&screen);
    assert_eq!(
        lines[0],
        format!("downloaded {name} (2.00 MiB)"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
}
