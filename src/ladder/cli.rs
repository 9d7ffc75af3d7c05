//! `tunstack ladder FILE`: the one part of the ladder that touches files.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{connections, svg, tcp_packets, text, Connection, Ladder};

/// Arguments of `tunstack ladder`.
#[derive(clap::Args, Debug)]
pub struct LadderArgs {
    /// The capture: pcap or pcapng; raw IP, Ethernet or Linux cooked
    /// (SLL, SLL2) link types, as tunstack, tcpdump and Wireshark write.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Draw only this connection: its number (1 is the first in the file)
    /// or one of its endpoints, e.g. 10.0.0.1:40000.
    #[arg(long, value_name = "N|ADDR:PORT")]
    pub conn: Option<String>,
    /// Write the ladder as SVG to this file instead of printing text
    /// (with several connections, the first goes there and connection N to
    /// NAME-N.svg beside it).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Which connections `--conn` selects: `(number, connection)`, numbered
/// from 1 in file order.
pub fn select<'a>(
    conns: &'a [Connection],
    choice: Option<&str>,
) -> Result<Vec<(usize, &'a Connection)>, String> {
    let numbered = conns.iter().enumerate().map(|(i, c)| (i + 1, c));
    let Some(choice) = choice else {
        return Ok(numbered.collect());
    };
    if let Ok(n) = choice.parse::<usize>() {
        return match conns.get(n.wrapping_sub(1)) {
            Some(c) => Ok(vec![(n, c)]),
            None => Err(format!(
                "--conn {n}: the capture has {} TCP connection(s)",
                conns.len()
            )),
        };
    }
    let endpoint: SocketAddr = choice
        .parse()
        .map_err(|_| format!("--conn {choice:?}: expected a number or ADDR:PORT"))?;
    let chosen: Vec<_> = numbered.filter(|(_, c)| c.has_endpoint(endpoint)).collect();
    if chosen.is_empty() {
        return Err(format!(
            "--conn {endpoint}: no TCP connection has this endpoint"
        ));
    }
    Ok(chosen)
}

/// `base.svg` for the first ladder, `base-N.svg` for the N-th.
fn svg_path(base: &Path, number: usize, first: bool) -> PathBuf {
    if first {
        return base.to_path_buf();
    }
    let stem = base.file_stem().unwrap_or_default().to_string_lossy();
    let ext = base
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    base.with_file_name(format!("{stem}-{number}{ext}"))
}

/// Runs `tunstack ladder`.
pub fn main(args: LadderArgs) -> io::Result<()> {
    let bytes = std::fs::read(&args.file)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", args.file.display())))?;
    let packets = tcp_packets(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", args.file.display()),
        )
    })?;
    let conns = connections(packets);
    if conns.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no TCP segments over IPv4 or IPv6", args.file.display()),
        ));
    }
    let chosen = select(&conns, args.conn.as_deref())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let ladders: Vec<(usize, Ladder)> = chosen.iter().map(|(n, c)| (*n, c.ladder())).collect();
    match &args.svg {
        None => io::stdout().write_all(text::render_all(&ladders).as_bytes()),
        Some(base) => {
            for (k, (number, ladder)) in ladders.iter().enumerate() {
                let path = svg_path(base, *number, k == 0);
                std::fs::write(&path, svg::render(ladder)).map_err(|e| {
                    io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
                })?;
                eprintln!("connection {number}: wrote {}", path.display());
            }
            Ok(())
        }
    }
}
