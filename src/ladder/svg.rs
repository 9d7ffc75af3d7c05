//! The ladder as a standalone SVG image: the two endpoints' lines, one
//! slanted arrow per segment (down the page, as time passes while it
//! travels) with its label above, options and marks above the label, and
//! each side's state beside its own line where it changes.

use std::fmt::Write;

use super::{Dir, Ladder, Mark, RowKind, Side};

const WIDTH: u32 = 960;
const LEFT_X: u32 = 250;
const RIGHT_X: u32 = 750;
const TOP: u32 = 70;
/// How far an arrow falls while it crosses.
const SLANT: u32 = 12;
const LINE: u32 = 15;

/// Escapes the characters XML gives meaning to in text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A `<text>` element.
fn text(out: &mut String, x: u32, y: u32, anchor: &str, class: &str, content: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" text-anchor="{anchor}" class="{class}">{}</text>"#,
        escape(content)
    );
}

/// Renders a ladder as an SVG document.
pub fn render(ladder: &Ladder) -> String {
    let mut body = String::new();
    let mut y = TOP;
    let [l, r] = ladder.endpoints.map(|e| e.to_string());
    text(&mut body, LEFT_X, 25, "middle", "name", &l);
    text(&mut body, RIGHT_X, 25, "middle", "name", &r);
    text(
        &mut body,
        LEFT_X - 10,
        50,
        "end",
        "state",
        ladder.initial[0].name(),
    );
    text(
        &mut body,
        RIGHT_X + 10,
        50,
        "start",
        "state",
        ladder.initial[1].name(),
    );
    text(&mut body, 10, 50, "start", "head", "#");
    text(&mut body, 110, 50, "end", "head", "time (s)");

    let state_text = |body: &mut String, side: usize, y: u32, name: &str| {
        if side == 0 {
            text(body, LEFT_X - 10, y, "end", "state", name);
        } else {
            text(body, RIGHT_X + 10, y, "start", "state", name);
        }
    };

    for row in &ladder.rows {
        let start = y;
        let marks = row.mark_labels();
        let mut dashed = false;
        match &row.kind {
            RowKind::Segment {
                frame,
                time,
                dir,
                label,
                options,
            } => {
                let details = row.details(options).join(" ");
                if !details.is_empty() {
                    y += LINE;
                    text(
                        &mut body,
                        (LEFT_X + RIGHT_X) / 2,
                        y,
                        "middle",
                        "mark",
                        &details,
                    );
                }
                y += LINE;
                text(
                    &mut body,
                    (LEFT_X + RIGHT_X) / 2,
                    y,
                    "middle",
                    "label",
                    label,
                );
                let (y0, y1) = (y + 5, y + 5 + SLANT);
                let (x0, x1) = match dir {
                    Dir::LeftToRight => (LEFT_X, RIGHT_X - 2),
                    Dir::RightToLeft => (RIGHT_X, LEFT_X + 2),
                };
                let class = if row
                    .marks
                    .iter()
                    .any(|m| matches!(m, Mark::Retransmission | Mark::Reset | Mark::Refused))
                    || label.contains("RST")
                {
                    "arrow alert"
                } else {
                    "arrow"
                };
                let _ = writeln!(
                    body,
                    r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" class="{class}" marker-end="url(#head)"/>"#
                );
                text(&mut body, 10, y1, "start", "head", &format!("{frame}"));
                text(
                    &mut body,
                    110,
                    y1,
                    "end",
                    "head",
                    &format!("{:.6}", time.as_secs_f64()),
                );
                // The sender's new state at the arrow's tail, the receiver's at its head.
                let sender = dir.sender().index();
                for (i, states) in row.states.iter().enumerate() {
                    let sy = if i == sender { y0 + 4 } else { y1 + 4 };
                    let names: Vec<&str> = states.iter().map(|s| s.name()).collect();
                    if !names.is_empty() {
                        state_text(&mut body, i, sy, &names.join(" > "));
                    }
                }
                y = y1 + 10;
            }
            RowKind::Arrival { side, frame, flags } => {
                y += LINE;
                let mut t = format!("(#{frame} {flags} arrives)");
                for m in &marks {
                    t.push(' ');
                    t.push_str(m);
                }
                let (x, anchor) = match side {
                    Side::Left => (LEFT_X + 8, "start"),
                    Side::Right => (RIGHT_X - 8, "end"),
                };
                text(&mut body, x, y, anchor, "mark", &t);
                for (i, states) in row.states.iter().enumerate() {
                    let names: Vec<&str> = states.iter().map(|s| s.name()).collect();
                    if !names.is_empty() {
                        state_text(&mut body, i, y, &names.join(" > "));
                    }
                }
                y += 6;
            }
            RowKind::Gap(gap) => {
                dashed = true;
                y += LINE + 6;
                let t = format!("... {} ...", super::text::seconds(*gap));
                text(&mut body, (LEFT_X + RIGHT_X) / 2, y, "middle", "gap", &t);
                y += 10;
            }
        }
        let class = if dashed { "life gap" } else { "life" };
        for x in [LEFT_X, RIGHT_X] {
            let _ = writeln!(
                body,
                r#"<line x1="{x}" y1="{start}" x2="{x}" y2="{y}" class="{class}"/>"#
            );
        }
    }
    y += LINE;
    text(
        &mut body,
        (LEFT_X + RIGHT_X) / 2,
        y,
        "middle",
        "gap",
        "(capture ends)",
    );
    text(
        &mut body,
        LEFT_X - 10,
        y,
        "end",
        "state",
        ladder.last[0].name(),
    );
    text(
        &mut body,
        RIGHT_X + 10,
        y,
        "start",
        "state",
        ladder.last[1].name(),
    );
    for note in ladder.end_notes() {
        y += LINE + 4;
        text(&mut body, 10, y, "start", "mark", &note);
    }
    let height = y + 20;

    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">"#
    );
    let _ = writeln!(
        out,
        "<title>TCP ladder: {} and {}</title>",
        escape(&l),
        escape(&r)
    );
    out.push_str(
        r#"<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>
<style>
text { font-family: monospace; font-size: 12px; }
.name { font-weight: bold; font-size: 14px; }
.state { fill: #05a; font-weight: bold; }
.head { fill: #666; }
.mark { fill: #b35900; }
.gap { fill: #666; font-style: italic; }
.life { stroke: #000; stroke-width: 2; }
.life.gap { stroke-dasharray: 3 4; }
.arrow { stroke: #000; stroke-width: 1.2; }
.arrow.alert { stroke: #c00; }
</style>
<rect width="100%" height="100%" fill="white"/>
"#,
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}
