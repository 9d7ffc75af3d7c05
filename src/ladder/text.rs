//! The ladder as text for a terminal, at most 100 columns wide.
//!
//! ```text
//!                 10.0.0.1:38042                                                        10.0.0.2:7
//!     #       time      CLOSED |                                                        | LISTEN
//!                              |              mss=1460 sackOK TS wscale=10              |
//!     1   0.000000    SYN-SENT |----------------- SYN seq=0 win=64240 ----------------->| SYN-RCVD
//!                              |                   mss=1460 wscale=3                    |
//! ```
//!
//! Each segment is one arrow between the two lines, its label on it;
//! options and marks go on a line above. A side's state is written beside
//! its own line in the row where it changes.

use std::fmt::Write;
use std::time::Duration;

use super::{Dir, Ladder, Row, RowKind, Side};

/// Width of the frame-number column.
const FRAME: usize = 5;
/// Width of the time column (seconds since the first segment).
const TIME: usize = 10;
/// Width of each state column.
const STATE: usize = 11;
/// Width between the two vertical lines.
const MID: usize = 56;
/// Column of the left line.
const LEFT_LINE: usize = FRAME + 1 + TIME + 1 + STATE + 1;

/// Renders a ladder as text lines of at most 100 columns.
pub fn render(ladder: &Ladder) -> String {
    let mut out = String::new();
    let [l, r] = ladder.endpoints.map(|e| e.to_string());
    // The names: the left one ends at its line, the right one starts at its.
    let left_end = LEFT_LINE + 1;
    let mut names = format!("{l:>left_end$}");
    let right_start = LEFT_LINE + 1 + MID;
    let pad = right_start.saturating_sub(names.len()).max(1);
    names += &format!("{:pad$}{r}", "");
    let _ = writeln!(out, "{names}");
    let initial = ladder.initial.map(|s| s.name().to_string());
    line(&mut out, "#", "time", &initial[0], '|', "", &initial[1]);

    for row in &ladder.rows {
        render_row(&mut out, row);
    }
    let last = ladder.last.map(|s| s.name().to_string());
    line(
        &mut out,
        "",
        "",
        "",
        '|',
        &centered("(capture ends)", MID),
        "",
    );
    let _ = writeln!(out, "final states: {l} {}, {r} {}", last[0], last[1]);
    for note in ladder.end_notes() {
        let _ = writeln!(out, "{note}");
    }
    out
}

/// Renders every ladder, each with a title line, separated by blank lines.
pub fn render_all(ladders: &[(usize, Ladder)]) -> String {
    let mut out = String::new();
    for (k, (number, ladder)) in ladders.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        let [l, r] = ladder.endpoints;
        let segments = ladder
            .rows
            .iter()
            .filter(|row| matches!(row.kind, RowKind::Segment { .. }))
            .count();
        let _ = writeln!(
            out,
            "connection {number}: {l} -> {r}, {segments} segments in {}",
            seconds(ladder.duration)
        );
        out.push_str(&render(ladder));
    }
    out
}

fn render_row(out: &mut String, row: &Row) {
    // A side's last new state goes on the arrow line; any before it (a
    // segment that both ACKs a FIN and carries one) on the line above.
    let state = |i: usize| row.states[i].last().map(|s| s.name()).unwrap_or("");
    let earlier = |i: usize| {
        let n = row.states[i].len();
        row.states[i]
            .get(..n.saturating_sub(1))
            .unwrap_or(&[])
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let marks = row.mark_labels();
    match &row.kind {
        RowKind::Segment {
            frame,
            time,
            dir,
            label,
            options,
        } => {
            let mut details = row.details(options);
            let fits = label.len() + 6 <= MID;
            if !fits {
                details.insert(0, label.clone());
            }
            let detail_lines = wrap(&details.join(" "), MID - 2);
            let (e0, e1) = (earlier(0), earlier(1));
            for (k, text) in detail_lines.iter().enumerate() {
                let (s0, s1) = if k == 0 { (&e0[..], &e1[..]) } else { ("", "") };
                line(out, "", "", s0, '|', &centered(text, MID), s1);
            }
            if detail_lines.is_empty() && (!e0.is_empty() || !e1.is_empty()) {
                line(out, "", "", &e0, '|', "", &e1);
            }
            let arrow = arrow(*dir, if fits { label } else { "" });
            line(
                out,
                &frame.to_string(),
                &format!("{:.6}", time.as_secs_f64()),
                state(0),
                '|',
                &arrow,
                state(1),
            );
        }
        RowKind::Arrival { side, frame, flags } => {
            let mut text = format!("(#{frame} {flags} arrives)");
            for m in &marks {
                text.push(' ');
                text.push_str(m);
            }
            let lines = wrap(&text, MID - 2);
            let n = lines.len();
            for (k, t) in lines.iter().enumerate() {
                let mid = match side {
                    Side::Left => format!(" {t:<w$}", w = MID - 1),
                    Side::Right => format!("{t:>w$} ", w = MID - 1),
                };
                let (s0, s1) = if k + 1 == n {
                    (state(0), state(1))
                } else {
                    ("", "")
                };
                line(out, "", "", s0, '|', &mid, s1);
            }
        }
        RowKind::Gap(gap) => {
            let text = format!("... {} ...", seconds(*gap));
            line(out, "", "", "", ':', &centered(&text, MID), "");
        }
    }
}

/// `1.000 s` or `200.3 ms`.
pub(super) fn seconds(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{} us", d.as_micros())
    }
}

/// One text line: frame, time, left state, `|`, the middle, `|`, right state.
fn line(out: &mut String, frame: &str, time: &str, left: &str, bar: char, mid: &str, right: &str) {
    let text =
        format!("{frame:>FRAME$} {time:>TIME$} {left:>STATE$} {bar}{mid:<MID$}{bar} {right}");
    out.push_str(text.trim_end());
    out.push('\n');
}

/// `--- label -->` or `<-- label ---`, `MID` wide.
fn arrow(dir: Dir, label: &str) -> String {
    let inner = if label.is_empty() {
        String::new()
    } else {
        format!(" {label} ")
    };
    let dashes = MID.saturating_sub(inner.len() + 1);
    let before = dashes / 2;
    let after = dashes - before;
    match dir {
        Dir::LeftToRight => format!("{}{inner}{}>", "-".repeat(before), "-".repeat(after)),
        Dir::RightToLeft => format!("<{}{inner}{}", "-".repeat(before), "-".repeat(after)),
    }
}

/// `text` centred in `width` columns.
fn centered(text: &str, width: usize) -> String {
    let pad = width.saturating_sub(text.len()) / 2;
    format!("{:pad$}{text}", "")
}

/// Splits `text` at spaces into lines of at most `width` characters (a
/// longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(last) if last.len() + 1 + word.len() <= width => {
                last.push(' ');
                last.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}
