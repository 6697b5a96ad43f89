//! Device logs: what each device did with us, one entry per check-in message and per
//! command exchange (action name, status, time, short details), for the admin API.
//!
//! Key layout (`d` = device channel id as a key segment):
//! - `ctr:dlog:<d>`    entries appended for the device so far (the newest entry's number)
//! - `dlog:<d>:<n>`    entry `n` ([`Entry`], JSON)
//! - `ctr:dlogall`     entries appended server-wide (the purge's order)
//! - `dlogall:<g>`     `<d>\n<n>\n<at>`: where server-wide entry `g` lives and its time
//! - `dlogpurge`       the next `g` the purge looks at
//!
//! Appending costs two increments and one batched write, whatever the log length; a
//! listing reads newest first in batches and stops after [`MAX_SCAN`] entries with a
//! cursor, so a selective filter on a long log is paged, never one unbounded scan. The
//! scheduler's purge walks the server-wide order, so logs of devices that went silent
//! expire too.

use serde::{Deserialize, Serialize};

use mdm_kv::key::segment;
use mdm_kv::{Backend, CounterKey, KvError, Store};

use crate::record::{self, Record, Stored, Writes};

/// Entries read per listing request at most.
pub const MAX_SCAN: u64 = 5_000;
const BATCH: u64 = 100;
/// Details are a hint for the admin, not a payload store.
pub const MAX_DETAILS: usize = 200;
/// A server-wide slot still empty this far behind the counter belongs to an append that
/// died between its increment and its write: the purge steps over it.
const HOLE_LAG: u64 = 1_000;

/// The device's entry counter; an error for an id too long to be a key (no device has one).
fn counter(device: &str) -> Result<CounterKey, KvError> {
    CounterKey::new(&format!("dlog:{}", segment(device)))
}

fn all_counter() -> CounterKey {
    CounterKey::new("dlogall").expect("counter name")
}

/// Where server-wide entry `g` lives and its time (`dlogall:<g>`, `<d>\n<n>\n<at>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pointer {
    /// The device and its entry number; `None` when the stored text lacks them.
    entry: Option<(String, u64)>,
    /// 0 when the stored text lacks it.
    at: u64,
}

impl Record for Pointer {
    type Id<'a> = u64;
    const NAME: &'static str = "device log pointer";
    fn key(g: u64) -> String {
        format!("dlogall:{g}")
    }
    fn encode(&self) -> Result<Vec<u8>, String> {
        let (device, n) = self.entry.as_ref().ok_or("a pointer names its entry")?;
        Ok(format!("{device}\n{n}\n{}", self.at).into_bytes())
    }
    /// Read leniently: whatever part is there is used.
    fn decode(raw: &[u8]) -> Result<Self, String> {
        let p = String::from_utf8_lossy(raw);
        let mut parts = p.splitn(3, '\n');
        let (device, n, at) = (parts.next(), parts.next(), parts.next());
        Ok(Pointer {
            entry: device
                .zip(n.and_then(|n| n.parse::<u64>().ok()))
                .map(|(d, n)| (d.to_owned(), n)),
            at: at.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0),
        })
    }
}

/// The next `g` the purge looks at (`dlogpurge`, decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct PurgeCursor(u64);

impl Record for PurgeCursor {
    type Id<'a> = ();
    const NAME: &'static str = "device log purge cursor";
    fn key((): ()) -> String {
        "dlogpurge".into()
    }
    record::stored_as_decimal!();
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub n: u64,
    /// A check-in `MessageType` (Authenticate, TokenUpdate, ...) or a command's
    /// `RequestType` (DeviceLock, DeviceName, ...).
    pub action: String,
    /// `ok`, `refused` for check-ins; the device's `Status` (`Acknowledged`, `Error`,
    /// `NotNow`, `CommandFormatError`) or `queued` for commands.
    pub status: String,
    pub at: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// The user channel, when the exchange was on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Record for Entry {
    /// (device channel id, entry number)
    type Id<'a> = (&'a str, u64);
    const NAME: &'static str = "device log entry";
    fn key((device, n): (&str, u64)) -> String {
        format!("dlog:{}:{n}", segment(device))
    }
}

/// What a caller logs; the number and time are filled in by [`append`].
#[derive(Debug, Clone, Default)]
pub struct NewEntry<'a> {
    pub action: &'a str,
    pub status: &'a str,
    pub details: &'a str,
    pub user: Option<&'a str>,
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_DETAILS {
        return s.to_owned();
    }
    let mut end = MAX_DETAILS;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Appends one entry to the device's log; returns its number.
pub async fn append<B: Backend>(
    store: &Store<B>,
    device: &str,
    entry: &NewEntry<'_>,
    now: u64,
) -> Result<u64, KvError> {
    let mut writes = Writes::default();
    let n = append_into(store, device, entry, now, &mut writes).await?;
    writes.save(store).await?;
    Ok(n)
}

/// [`append`] with the entry and its pointer added to `writes`, for a caller that writes
/// them with other records (their numbers are taken now).
pub async fn append_into<B: Backend>(
    store: &Store<B>,
    device: &str,
    entry: &NewEntry<'_>,
    now: u64,
    writes: &mut Writes,
) -> Result<u64, KvError> {
    let n = store.increment(&counter(device)?, 1).await? as u64;
    let g = store.increment(&all_counter(), 1).await? as u64;
    let e = Entry {
        n,
        action: entry.action.to_owned(),
        status: entry.status.to_owned(),
        at: now,
        details: clip(entry.details),
        user: entry.user.map(str::to_owned),
    };
    let pointer = Pointer {
        entry: Some((device.to_owned(), n)),
        at: now,
    };
    writes.put(&e, (device, n))?.put(&pointer, g)?;
    Ok(n)
}

/// Which entries a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub action: Option<String>,
    pub status: Option<String>,
    /// Entries at or after this time.
    pub from: Option<u64>,
    /// Entries at or before this time.
    pub to: Option<u64>,
    /// Entries older than this number (the `next` of the previous page).
    pub before: Option<u64>,
    pub limit: usize,
}

impl LogQuery {
    fn matches(&self, e: &Entry) -> bool {
        self.action
            .as_deref()
            .is_none_or(|a| e.action.eq_ignore_ascii_case(a))
            && self
                .status
                .as_deref()
                .is_none_or(|s| e.status.eq_ignore_ascii_case(s))
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at <= t)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// Newest first.
    pub entries: Vec<Entry>,
    /// Pass as `before` for the next page; `None` when the log is exhausted.
    pub next: Option<u64>,
}

/// Entries of a device's log, newest first.
pub async fn list<B: Backend>(
    store: &Store<B>,
    device: &str,
    q: &LogQuery,
) -> Result<LogPage, KvError> {
    // An id too long to be a key names no device: its log is empty.
    let newest = match counter(device) {
        Ok(c) => store.counter(&c).await?.max(0) as u64,
        Err(_) => 0,
    };
    let mut top = match q.before {
        Some(b) => b.saturating_sub(1).min(newest),
        None => newest,
    };
    let mut entries = Vec::new();
    let mut scanned = 0;
    while top >= 1 && entries.len() < q.limit && scanned < MAX_SCAN {
        let low = top.saturating_sub(BATCH - 1).max(1);
        let ids: Vec<(&str, u64)> = (low..=top).rev().map(|n| (device, n)).collect();
        for (i, e) in Entry::load_many_valid(store, &ids)
            .await?
            .into_iter()
            .enumerate()
        {
            let n = top - i as u64;
            scanned += 1;
            let Some(e) = e else {
                continue;
            };
            // Times grow with n: below the first entry older than `from` nothing matches.
            if q.from.is_some_and(|f| e.at < f) {
                return Ok(LogPage {
                    entries,
                    next: None,
                });
            }
            if q.matches(&e) {
                entries.push(e);
                if entries.len() == q.limit {
                    return Ok(LogPage {
                        entries,
                        next: (n > 1).then_some(n),
                    });
                }
            }
        }
        top = low - 1;
    }
    Ok(LogPage {
        entries,
        next: (top >= 1).then_some(top + 1),
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub deleted: u64,
    /// More entries are due than this call's budget allowed.
    pub more: bool,
}

/// Deletes log entries older than `now - retention`, at most `budget` of them, walking
/// the server-wide order from where the last purge stopped.
pub async fn purge<B: Backend>(
    store: &Store<B>,
    now: u64,
    retention: u64,
    budget: u64,
) -> Result<PurgeReport, KvError> {
    let cutoff = now.saturating_sub(retention);
    let total = store.counter(&all_counter()).await?.max(0) as u64;
    let mut next = PurgeCursor::load_valid(store, ())
        .await?
        .map_or(1, |c| c.0.max(1));
    let start = next;
    let mut report = PurgeReport::default();
    async fn drop_keys<B: Backend>(store: &Store<B>, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        store.delete_many(&refs).await
    }
    'walk: while next <= total && report.deleted < budget {
        let high = (next + BATCH - 1).min(total);
        let ids: Vec<u64> = (next..=high).collect();
        let pointers = Pointer::load_many_valid(store, &ids).await?;
        let mut doomed: Vec<String> = Vec::new();
        for (i, raw) in pointers.into_iter().enumerate() {
            let g = next + i as u64;
            match raw {
                Some(p) => {
                    if p.at >= cutoff {
                        drop_keys(store, &doomed).await?;
                        next = g;
                        break 'walk;
                    }
                    if let Some((d, n)) = &p.entry {
                        doomed.push(Entry::key((d, *n)));
                    }
                    doomed.push(Pointer::key(g));
                    report.deleted += 1;
                }
                // An append between its increment and its write: wait for it, unless it
                // is so far behind that it died.
                None if g + HOLE_LAG > total => {
                    drop_keys(store, &doomed).await?;
                    next = g;
                    break 'walk;
                }
                None => {}
            }
            if report.deleted >= budget {
                drop_keys(store, &doomed).await?;
                next = g + 1;
                report.more = true;
                break 'walk;
            }
        }
        drop_keys(store, &doomed).await?;
        next = high + 1;
    }
    if next != start {
        PurgeCursor(next).save(store, ()).await?;
    }
    Ok(report)
}
