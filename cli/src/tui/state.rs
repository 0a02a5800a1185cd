//! The TUI's state as plain data and its key handling as a pure state machine. [`App::on_key`],
//! [`App::tick`] and [`App::apply`] change the state and return the [`Request`]s to fetch; they
//! do no I/O, so every transition is unit-tested, and the renderer draws from an [`App`] alone.

use std::time::Duration;

use crate::client::{
    ApiKey, GetUdf, NamespaceEntry, NamespaceMetadata, Pipeline, QueueStatus, Udf,
};
use crate::config::EnvEntry;

/// The five top-level views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Indexes,
    Functions,
    Pipelines,
    Keys,
    Environments,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 5] = [
        View::Indexes,
        View::Functions,
        View::Pipelines,
        View::Keys,
        View::Environments,
    ];

    /// The key that opens the view from anywhere.
    pub fn key(self) -> char {
        match self {
            View::Indexes => 'i',
            View::Functions => 'f',
            View::Pipelines => 'p',
            View::Keys => 'k',
            View::Environments => 'e',
        }
    }

    /// The view's title.
    pub fn title(self) -> &'static str {
        match self {
            View::Indexes => "Indexes",
            View::Functions => "Functions",
            View::Pipelines => "Pipelines",
            View::Keys => "Keys",
            View::Environments => "Environments",
        }
    }

    /// The non-interactive command with the same data (raw values).
    pub fn twin(self) -> &'static str {
        match self {
            View::Indexes => "layer index list",
            View::Functions => "layer udf list",
            View::Pipelines => "layer pipeline list",
            View::Keys => "layer keys ls",
            View::Environments => "layer env ls",
        }
    }

    /// The detail view's command twin.
    pub fn detail_twin(self) -> &'static str {
        match self {
            View::Indexes => "layer index get NAME",
            View::Functions => "layer udf get UDF_ID",
            View::Pipelines => "layer pipeline get ID",
            View::Keys => "layer keys get KEY_ID",
            View::Environments => "layer env show NAME",
        }
    }

    fn from_key(c: char) -> Option<View> {
        View::ALL.into_iter().find(|v| v.key() == c)
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// What is on screen: a view's list, or one item's detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    List(View),
    /// The view and the item's id (index name, UDF id, pipeline id, key id, environment name).
    Detail(View, String),
}

impl Screen {
    /// The view the screen belongs to.
    pub fn view(&self) -> View {
        match self {
            Screen::List(v) | Screen::Detail(v, _) => *v,
        }
    }
}

/// A key press, independent of the terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Ctrl-C: quits from anywhere.
    Interrupt,
}

/// A read the event loop performs and answers with a [`Response`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    List(View),
    Detail(View, String),
}

/// A UDF and its queue status (`None`: the status route failed; shown without counts).
#[derive(Clone, Debug)]
pub struct UdfRow {
    pub udf: Udf,
    pub status: Option<QueueStatus>,
}

/// A pipeline and its queue status (`None`: no worker has staged into it yet, or unreadable).
#[derive(Clone, Debug)]
pub struct PipelineRow {
    pub pipeline: Pipeline,
    pub status: Option<QueueStatus>,
}

/// One config environment.
#[derive(Clone, Debug, Default)]
pub struct EnvRow {
    pub name: String,
    pub entry: EnvEntry,
    /// The config's active environment.
    pub active: bool,
    /// The environment this TUI reads through.
    pub in_use: bool,
}

/// An index's metadata joined with its listing row (cache state, last write).
#[derive(Clone, Debug, Default)]
pub struct IndexDetail {
    pub meta: NamespaceMetadata,
    pub entry: Option<NamespaceEntry>,
    /// Why the listing row is missing, when the listing call failed.
    pub listing_error: Option<String>,
}

/// A list view's rows.
#[derive(Clone, Debug)]
pub enum ListData {
    Indexes(Vec<NamespaceEntry>),
    Functions(Vec<UdfRow>),
    Pipelines(Vec<PipelineRow>),
    Keys(Vec<ApiKey>),
    Environments(Vec<EnvRow>),
}

impl ListData {
    /// The id each row's detail view is opened with, in row order.
    pub fn ids(&self) -> Vec<String> {
        match self {
            ListData::Indexes(v) => v.iter().map(|e| e.name.clone()).collect(),
            ListData::Functions(v) => v.iter().map(|r| r.udf.id.clone()).collect(),
            ListData::Pipelines(v) => v.iter().map(|r| r.pipeline.id.clone()).collect(),
            ListData::Keys(v) => v.iter().map(|k| k.key_id.clone()).collect(),
            ListData::Environments(v) => v.iter().map(|e| e.name.clone()).collect(),
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            ListData::Indexes(v) => v.len(),
            ListData::Functions(v) => v.len(),
            ListData::Pipelines(v) => v.len(),
            ListData::Keys(v) => v.len(),
            ListData::Environments(v) => v.len(),
        }
    }

    /// The detail the list row already carries, shown until the detail read answers.
    fn prefill(&self, id: &str) -> Option<DetailData> {
        match self {
            ListData::Indexes(_) => None,
            ListData::Functions(v) => v.iter().find(|r| r.udf.id == id).and_then(|r| {
                r.status.clone().map(|status| {
                    DetailData::Function(GetUdf {
                        udf: r.udf.clone(),
                        status,
                    })
                })
            }),
            ListData::Pipelines(v) => v
                .iter()
                .find(|r| r.pipeline.id == id)
                .map(|r| DetailData::Pipeline(r.clone())),
            ListData::Keys(v) => v
                .iter()
                .find(|k| k.key_id == id)
                .map(|k| DetailData::Key(k.clone())),
            ListData::Environments(v) => v
                .iter()
                .find(|e| e.name == id)
                .map(|e| DetailData::Environment(e.clone())),
        }
    }
}

/// A detail view's data.
#[derive(Clone, Debug)]
pub enum DetailData {
    Index(IndexDetail),
    Function(GetUdf),
    Pipeline(PipelineRow),
    Key(ApiKey),
    Environment(EnvRow),
}

/// What a request returned.
#[derive(Clone, Debug)]
pub enum Payload {
    List(ListData),
    /// Boxed: an index detail is far larger than a list.
    Detail(Box<DetailData>),
}

/// The answer to a [`Request`], stamped with the time it arrived.
#[derive(Clone, Debug)]
pub struct Response {
    pub request: Request,
    pub result: Result<Payload, String>,
    pub at_ms: u64,
}

/// Data that may be loading, loaded, stale after a failed refresh, or failed.
#[derive(Clone, Debug)]
pub struct Slot<T> {
    pub data: Option<T>,
    /// The last read's error (the data, if any, is from an earlier read).
    pub error: Option<String>,
    /// When the data (or the error) last arrived.
    pub at_ms: Option<u64>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            data: None,
            error: None,
            at_ms: None,
        }
    }
}

/// Where the TUI reads from (shown in the title bar).
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub base_url: String,
    pub env_name: Option<String>,
}

/// The whole TUI state.
#[derive(Debug)]
pub struct App {
    pub screen: Screen,
    pub header: Header,
    /// Each view's list, indexed by [`View`] order.
    pub lists: [Slot<ListData>; 5],
    /// Each view's selected row.
    pub selected: [usize; 5],
    /// The open detail view's data.
    pub detail: Slot<DetailData>,
    /// Lines the detail view is scrolled down by.
    pub detail_scroll: u16,
    /// Requests sent and not answered yet (never sent twice at once).
    pub inflight: Vec<Request>,
    /// The current time, epoch-ms: ages are rendered relative to it.
    pub now_ms: u64,
    /// How often the screen's data is re-read.
    pub interval: Duration,
    pub quit: bool,
}

/// Rows a page key moves by.
const PAGE: usize = 10;

impl App {
    /// A fresh state on the indexes view; nothing loaded yet.
    pub fn new(header: Header, interval: Duration, now_ms: u64) -> Self {
        App {
            screen: Screen::List(View::Indexes),
            header,
            lists: Default::default(),
            selected: [0; 5],
            detail: Slot::default(),
            detail_scroll: 0,
            inflight: Vec::new(),
            now_ms,
            interval,
            quit: false,
        }
    }

    /// The first reads: the opening screen's data.
    pub fn start(&mut self) -> Vec<Request> {
        self.refresh()
    }

    /// A view's list slot.
    pub fn list(&self, v: View) -> &Slot<ListData> {
        &self.lists[v.idx()]
    }

    /// A view's selected row.
    pub fn selected(&self, v: View) -> usize {
        self.selected[v.idx()]
    }

    /// Whether a read of the current screen is in flight.
    pub fn loading(&self) -> bool {
        self.inflight.contains(&self.current_request())
    }

    fn current_request(&self) -> Request {
        match &self.screen {
            Screen::List(v) => Request::List(*v),
            Screen::Detail(v, id) => Request::Detail(*v, id.clone()),
        }
    }

    /// The current screen's read, unless one is in flight.
    fn refresh(&mut self) -> Vec<Request> {
        let r = self.current_request();
        if self.inflight.contains(&r) {
            return Vec::new();
        }
        self.inflight.push(r.clone());
        vec![r]
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: Key) -> Vec<Request> {
        match key {
            Key::Interrupt => {
                self.quit = true;
                Vec::new()
            }
            Key::Esc | Key::Char('q') => {
                match &self.screen {
                    Screen::Detail(v, _) => {
                        self.screen = Screen::List(*v);
                        self.detail = Slot::default();
                        self.detail_scroll = 0;
                    }
                    Screen::List(_) => self.quit = true,
                }
                Vec::new()
            }
            Key::Char('r') => self.refresh(),
            Key::Char(c) => match View::from_key(c) {
                Some(v) => {
                    self.screen = Screen::List(v);
                    self.detail = Slot::default();
                    self.detail_scroll = 0;
                    self.refresh()
                }
                None => Vec::new(),
            },
            Key::Enter => self.open_detail(),
            Key::Up | Key::Down | Key::PageUp | Key::PageDown | Key::Home | Key::End => {
                self.move_by(key);
                Vec::new()
            }
        }
    }

    fn open_detail(&mut self) -> Vec<Request> {
        let Screen::List(v) = self.screen else {
            return Vec::new();
        };
        let Some(list) = &self.lists[v.idx()].data else {
            return Vec::new();
        };
        let Some(id) = list.ids().into_iter().nth(self.selected[v.idx()]) else {
            return Vec::new();
        };
        self.detail = Slot {
            data: list.prefill(&id),
            error: None,
            at_ms: None,
        };
        self.detail_scroll = 0;
        self.screen = Screen::Detail(v, id);
        self.refresh()
    }

    fn move_by(&mut self, key: Key) {
        match &self.screen {
            Screen::List(v) => {
                let i = v.idx();
                let len = self.lists[i].data.as_ref().map_or(0, ListData::len);
                let last = len.saturating_sub(1);
                let cur = self.selected[i];
                self.selected[i] = match key {
                    Key::Up => cur.saturating_sub(1),
                    Key::Down => (cur + 1).min(last),
                    Key::PageUp => cur.saturating_sub(PAGE),
                    Key::PageDown => (cur + PAGE).min(last),
                    Key::Home => 0,
                    _ => last,
                };
            }
            Screen::Detail(..) => {
                let s = self.detail_scroll;
                self.detail_scroll = match key {
                    Key::Up => s.saturating_sub(1),
                    Key::Down => s.saturating_add(1),
                    Key::PageUp => s.saturating_sub(PAGE as u16),
                    Key::PageDown => s.saturating_add(PAGE as u16),
                    Key::Home => 0,
                    _ => u16::MAX,
                };
            }
        }
    }

    /// Advances the clock; re-reads the current screen once its data is `interval` old.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Request> {
        self.now_ms = now_ms;
        let at = match &self.screen {
            Screen::List(v) => self.lists[v.idx()].at_ms,
            Screen::Detail(..) => self.detail.at_ms,
        };
        let due = at.is_none_or(|t| now_ms.saturating_sub(t) >= self.interval.as_millis() as u64);
        if due { self.refresh() } else { Vec::new() }
    }

    /// Stores a read's answer. A detail answer for a screen no longer open is dropped; a failed
    /// read keeps the earlier data and records the error next to it.
    pub fn apply(&mut self, r: Response) {
        self.inflight.retain(|q| q != &r.request);
        self.now_ms = self.now_ms.max(r.at_ms);
        match (&r.request, r.result) {
            (Request::List(v), Ok(Payload::List(data))) => {
                let i = v.idx();
                let len = data.len();
                self.lists[i] = Slot {
                    data: Some(data),
                    error: None,
                    at_ms: Some(r.at_ms),
                };
                self.selected[i] = self.selected[i].min(len.saturating_sub(1));
            }
            (Request::List(v), Err(e)) => {
                let s = &mut self.lists[v.idx()];
                s.error = Some(e);
                s.at_ms = Some(r.at_ms);
            }
            (Request::Detail(v, id), result) => {
                if self.screen != Screen::Detail(*v, id.clone()) {
                    return;
                }
                match result {
                    Ok(Payload::Detail(d)) => {
                        self.detail = Slot {
                            data: Some(*d),
                            error: None,
                            at_ms: Some(r.at_ms),
                        };
                    }
                    Ok(Payload::List(_)) => {
                        self.detail.error = Some("unexpected answer to a detail read".into());
                        self.detail.at_ms = Some(r.at_ms);
                    }
                    Err(e) => {
                        self.detail.error = Some(e);
                        self.detail.at_ms = Some(r.at_ms);
                    }
                }
            }
            (Request::List(v), Ok(Payload::Detail(_))) => {
                let s = &mut self.lists[v.idx()];
                s.error = Some("unexpected answer to a list read".into());
                s.at_ms = Some(r.at_ms);
            }
        }
    }
}
