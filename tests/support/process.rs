//! Running programs with timeouts: in the foreground ([`run_with_timeout`],
//! [`try_run_with_input`]) or in the background ([`Background`]). Every
//! process is killed by its own PID when it overstays; none is left behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the full output unless the command exited 0.
    pub fn expect_success(self, what: &str) -> Output {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` (no stdin), capturing its output; kills it and panics after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    try_run_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_with_timeout`], but reports a failure to start or a timeout
/// (after killing the command) as an error instead of panicking.
pub fn try_run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let desc = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {desc}: {e}"))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    wait_with_timeout(&mut child, &desc, timeout, stdout, stderr)
}

/// A command line for messages, cut to 300 characters.
fn describe(cmd: &Command) -> String {
    let mut desc = format!("{cmd:?}");
    if desc.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| desc.is_char_boundary(i))
            .unwrap_or(0);
        desc.truncate(cut);
        desc.push_str("...");
    }
    desc
}

/// Waits for `child` until `timeout`, then kills it and reports a timeout.
fn wait_with_timeout(
    child: &mut Child,
    desc: &str,
    timeout: Duration,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
) -> Result<Output, String> {
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let (out, err) = (
                    stdout.join().unwrap_or_default(),
                    stderr.join().unwrap_or_default(),
                );
                return Err(format!(
                    "{desc} timed out after {timeout:?}\nstdout:\n{out}\nstderr:\n{err}"
                ));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for {desc}: {e}"));
            }
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Like [`try_run_with_timeout`], with `input` written to the command's
/// standard input (which is then closed).
pub fn try_run_with_input(
    cmd: &mut Command,
    input: &[u8],
    timeout: Duration,
) -> Result<Output, String> {
    let desc = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {desc}: {e}"))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        // A thread of its own, so a child that stops reading cannot block us;
        // dropping `stdin` at the end closes it (EOF).
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let result = wait_with_timeout(&mut child, &desc, timeout, stdout, stderr);
    if let Some(w) = writer {
        let _ = w.join();
    }
    result
}

/// A program running in the background (a kernel-side server). Its `Drop`
/// kills it (by PID) if it is still running.
pub struct Background {
    child: Option<Child>,
    desc: String,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

impl Background {
    /// Starts `cmd` (no stdin) and waits until a line of its standard output
    /// contains `ready`.
    pub fn spawn(cmd: &mut Command, ready: &str, timeout: Duration) -> Background {
        let desc = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
        let stdout = child.stdout.take();
        let stderr = read_all(child.stderr.take());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = {
            let lines = lines.clone();
            let ready = ready.to_string();
            thread::spawn(move || {
                let Some(stdout) = stdout else { return };
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let is_ready = line.contains(&ready);
                    // Stored before the signal, so `stdout_so_far` has it.
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    if is_ready {
                        let _ = ready_tx.send(());
                    }
                }
            })
        };
        let mut bg = Background {
            child: Some(child),
            desc,
            stdout_lines: lines,
            stdout_reader: Some(reader),
            stderr: Some(stderr),
        };
        if ready_rx.recv_timeout(timeout).is_err() {
            let out = bg.finish();
            panic!(
                "{} did not print {ready:?} within {timeout:?}:\nstdout:\n{}\nstderr:\n{}",
                bg.desc, out.stdout, out.stderr
            );
        }
        bg
    }

    /// What the program printed on its standard output so far.
    pub fn stdout_so_far(&self) -> String {
        self.stdout_lines
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    }

    /// Waits up to `timeout` for the program to exit and returns its output;
    /// panics (after killing it) on a timeout.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        if let Some(child) = self.child.as_mut() {
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        let out = self.finish();
        assert!(
            !running,
            "{} did not exit within {timeout:?}:\nstdout:\n{}\nstderr:\n{}",
            self.desc, out.stdout, out.stderr
        );
        out
    }

    /// Kills the program if it still runs, reaps it, and collects its output.
    fn finish(&mut self) -> Output {
        let status = match self.child.take() {
            Some(mut child) => {
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.kill();
                }
                child.wait().ok()
            }
            None => None,
        };
        if let Some(r) = self.stdout_reader.take() {
            let _ = r.join();
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stdout = self
            .stdout_lines
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        Output {
            status: status.unwrap_or_else(|| ExitStatus::from_raw(-1)),
            stdout,
            stderr,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        s
    })
}
