//! The read-only operations TUI: bare `layer` on a TTY, or `layer browse`. Views of indexes,
//! functions (UDFs), pipelines, keys and environments with detail views, switched with
//! `i`/`f`/`p`/`k`/`e`, opened with `enter`, left with `esc`/`q`; the current screen re-reads every
//! `--interval` seconds (default 5).
//!
//! [`state`] is the plain state and its pure key handling, [`fetch`] the reads through the typed
//! client, [`render`]/[`detail`] draw a state. This module runs the loop: a thread turns terminal
//! events into [`Key`]s, spawned tasks answer [`Request`]s, a one-second tick ages the display
//! and triggers refreshes.

mod detail;
mod fetch;
mod human;
mod panel;
mod render;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::client::Api;
use crate::context::Ctx;
use crate::error::{CliError, Result};

use fetch::Fetcher;
use state::{App, Header, Key, Request, Response};

/// The default seconds between re-reads of the screen's data. The namespace listing is cached
/// by the gateway for 10 s, so a faster refresh would mostly re-read the cache.
pub const DEFAULT_INTERVAL_SECS: f64 = 5.0;

/// `layer browse` options.
#[derive(Args, Debug, Clone)]
pub struct BrowseArgs {
    /// Seconds between re-reads of the current view's data
    #[arg(long, default_value_t = DEFAULT_INTERVAL_SECS, value_name = "SECONDS")]
    pub interval: f64,
}

impl Default for BrowseArgs {
    fn default() -> Self {
        BrowseArgs {
            interval: DEFAULT_INTERVAL_SECS,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens the TUI and runs it until `q`/`esc` on a list or Ctrl-C. Needs a terminal on stdin and
/// stdout (a usage error otherwise).
pub async fn run(ctx: &Ctx, args: BrowseArgs) -> Result<()> {
    use std::io::IsTerminal;
    if !(args.interval.is_finite() && args.interval >= 0.5) {
        return Err(CliError::usage("--interval must be at least 0.5 seconds"));
    }
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(CliError::usage(
            "the TUI needs a terminal (stdin and stdout); use the commands (`layer index list`, …) in scripts",
        ));
    }
    let resolved = ctx.resolve()?;
    let fetcher = Fetcher {
        api: Api::new(&resolved.base_url, resolved.api_key.as_deref()).map_err(|e| e.message),
        in_use: resolved.env_name.clone(),
    };
    let header = Header {
        base_url: resolved.base_url,
        env_name: resolved.env_name,
    };
    let mut app = App::new(header, Duration::from_secs_f64(args.interval), now_ms());
    let mut terminal =
        ratatui::try_init().map_err(|e| CliError::failure(format!("terminal: {e}")))?;
    let result = event_loop(&mut terminal, &mut app, fetcher).await;
    ratatui::restore();
    result
}

/// What the input thread reports.
enum Input {
    Key(Key),
    /// A resize (or any event worth a redraw).
    Redraw,
    Failed(String),
}

/// Maps a terminal key event to a [`Key`]; `None` for keys the TUI ignores.
fn key_of(e: KeyEvent) -> Option<Key> {
    if e.kind != KeyEventKind::Press {
        return None;
    }
    Some(match e.code {
        KeyCode::Char('c') if e.modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        _ => return None,
    })
}

/// Reads terminal events until `stop` is set or the receiver is gone.
fn read_input(tx: UnboundedSender<Input>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let msg = match event::poll(Duration::from_millis(100)) {
            Ok(false) => continue,
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) => match key_of(k) {
                    Some(k) => Input::Key(k),
                    None => continue,
                },
                Ok(Event::Resize(..)) => Input::Redraw,
                Ok(_) => continue,
                Err(e) => Input::Failed(e.to_string()),
            },
            Err(e) => Input::Failed(e.to_string()),
        };
        let failed = matches!(msg, Input::Failed(_));
        if tx.send(msg).is_err() || failed {
            return;
        }
    }
}

async fn event_loop(terminal: &mut DefaultTerminal, app: &mut App, fetcher: Fetcher) -> Result<()> {
    let (in_tx, mut in_rx) = unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || read_input(in_tx, stop))
    };
    let (res_tx, mut res_rx) = unbounded_channel::<Response>();
    let spawn = |reqs: Vec<Request>| {
        for request in reqs {
            let f = fetcher.clone();
            let tx = res_tx.clone();
            tokio::spawn(async move {
                let result = f.run(&request).await;
                let _ = tx.send(Response {
                    request,
                    result,
                    at_ms: now_ms(),
                });
            });
        }
    };
    spawn(app.start());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        if let Err(e) = terminal.draw(|f| render::draw(f, app)) {
            break Err(CliError::failure(format!("terminal: {e}")));
        }
        tokio::select! {
            input = in_rx.recv() => match input {
                Some(Input::Key(k)) => spawn(app.on_key(k)),
                Some(Input::Redraw) => {}
                Some(Input::Failed(e)) => break Err(CliError::failure(format!("terminal input: {e}"))),
                None => break Err(CliError::failure("terminal input ended")),
            },
            Some(r) = res_rx.recv() => app.apply(r),
            _ = tick.tick() => spawn(app.tick(now_ms())),
        }
        if app.quit {
            break Ok(());
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    result
}
