//! PostgreSQL's binary COPY format, for reading log entries at the replica's own output
//! speed: `COPY (SELECT …) TO STDOUT (FORMAT binary)` streams rows without the per-row
//! protocol messages of a query, and this decodes the few types the log uses.
//!
//! Format: an 11-byte signature, a 32-bit flags field and a header extension; then per row a
//! 16-bit field count (-1 ends the data) and per field a 32-bit length (-1 for NULL) and
//! the value in the type's binary send format (big-endian).

use chrono::{DateTime, Utc};

use crate::Entry;
use crate::rows::{Label, Logs};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the UNIX epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// An entry's columns before its details, in the order the readers of the log decode them.
const FIELDS: &str = "id, incident_id, type, created_at, agent_type, agent_id, channel, user_id, \
     assignee_ids, escalation_policy_id";

/// The SELECT list of a read of the log, in order: the entry; its `details` as text unless
/// `details` is false; its account. PostgreSQL prints a jsonb value in one normal form (keys
/// ordered, whitespace fixed), so equal details compare equal as text without parsing them.
/// Without details the decoder is [`Decoder::without_details`]: the fold reads details only
/// to tell a duplicate, and printing each jsonb value as text is a tenth or more of
/// PostgreSQL's work of a COPY (BENCHMARKS.md).
pub fn columns(details: bool) -> String {
    let details = if details {
        ", CAST(details AS TEXT)"
    } else {
        ""
    };
    format!("{FIELDS}{details}, account_id")
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

type Field<'a> = Option<&'a [u8]>;

/// Why a read stopped: the data ended before the value did (more may follow), or the
/// data is not what it should be.
#[derive(Debug)]
enum Stop {
    Short,
    Bad(String),
}

impl From<String> for Stop {
    fn from(s: String) -> Self {
        Stop::Bad(s)
    }
}

impl From<&str> for Stop {
    fn from(s: &str) -> Self {
        Stop::Bad(s.to_owned())
    }
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(Stop::Short)?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, Stop> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, Stop> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn field(&mut self) -> Result<Field<'a>, Stop> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

fn int8(f: Field<'_>, what: &str) -> Result<Option<i64>, String> {
    f.map(|b| {
        <[u8; 8]>::try_from(b)
            .map(i64::from_be_bytes)
            .map_err(|_| format!("{what}: an int8 of {} bytes", b.len()))
    })
    .transpose()
}

fn text(f: Field<'_>, what: &str) -> Result<Option<String>, String> {
    f.map(|b| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| format!("{what}: {e}"))
    })
    .transpose()
}

fn label(f: Field<'_>, what: &str) -> Result<Option<Label>, String> {
    f.map(|b| crate::rows::label_of(b).map_err(|e| format!("{what}: {e}")))
        .transpose()
}

fn timestamptz(f: Field<'_>, what: &str) -> Result<Option<DateTime<Utc>>, String> {
    int8(f, what)?
        .map(|us| {
            DateTime::from_timestamp_micros(us.saturating_add(PG_EPOCH_US))
                .ok_or_else(|| format!("{what}: timestamp out of range"))
        })
        .transpose()
}

fn int8_array(f: Field<'_>, what: &str) -> Result<Option<Vec<i64>>, String> {
    let Some(b) = f else {
        return Ok(None);
    };
    let short = |_| format!("{what}: an array cut short");
    let mut r = Reader { buf: b, at: 0 };
    let ndim = r.i32().map_err(short)?;
    let _has_nulls = r.i32().map_err(short)?;
    let _elem_type = r.i32().map_err(short)?;
    if ndim == 0 {
        return Ok(Some(Vec::new()));
    }
    if ndim != 1 {
        return Err(format!("{what}: an array of {ndim} dimensions"));
    }
    let n = r.i32().map_err(short)?.max(0) as usize;
    let _lower = r.i32().map_err(short)?;
    let mut out = Vec::with_capacity(n.min(b.len() / 4));
    for _ in 0..n {
        // A NULL element has no id to keep.
        if let Some(v) = int8(r.field().map_err(short)?, what)? {
            out.push(v);
        }
    }
    Ok(Some(out))
}

/// Decodes rows of [`COLUMNS`] into entries with their account, from the whole data.
#[cfg(test)]
fn entries(buf: &[u8]) -> Result<Vec<(Entry, i64)>, String> {
    let mut d = Decoder::default();
    d.feed(buf);
    let mut rows: Vec<(Entry, i64)> = d
        .finish()?
        .into_values()
        .flat_map(|(account, log)| log.into_iter().map(move |e| (e, account)))
        .collect();
    rows.sort_by_key(|(e, _)| e.id);
    Ok(rows)
}

/// Decodes rows of [`COLUMNS`] as the data arrives, in pieces cut anywhere (PostgreSQL
/// sends a row per message): no buffer of the whole read, which for a read of a few
/// thousand incidents is megabytes allocated, filled and freed again for every read.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The start of a row (or the header) whose end has not arrived yet.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
    /// Decoded so far, grouped as they arrive (no list of every row to regroup later).
    rows: Logs,
    /// The first thing wrong with the data: the rest is not decoded.
    error: Option<String>,
    /// The rows are [`columns`] without details: every entry's `details` is None.
    no_details: bool,
}

impl Decoder {
    /// A decoder of rows of [`columns`] without details.
    pub fn without_details() -> Self {
        Decoder {
            no_details: true,
            ..Decoder::default()
        }
    }

    /// Decodes what `data` completes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let decoded = if self.pending.is_empty() {
            self.decode(data)
                .map(|used| self.pending.extend_from_slice(&data[used..]))
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(data);
            self.decode(&pending).map(|used| {
                pending.drain(..used);
                self.pending = pending;
            })
        };
        if let Err(e) = decoded {
            self.error = Some(e);
        }
    }

    /// The entries by incident, once the data has ended where it should.
    pub fn finish(self) -> Result<Logs, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.ended {
            return Err(format!(
                "COPY data ends early ({} bytes of a row or header left)",
                self.pending.len()
            ));
        }
        Ok(self.rows)
    }

    /// Decodes the complete units at the start of `buf`; returns how many bytes they took.
    fn decode(&mut self, buf: &[u8]) -> Result<usize, String> {
        let mut done = 0;
        while !self.ended && done < buf.len() {
            let mut r = Reader {
                buf: &buf[done..],
                at: 0,
            };
            let unit = if self.header_read {
                self.row(&mut r)
            } else {
                header(&mut r).map(|()| self.header_read = true)
            };
            match unit {
                Ok(()) => done += r.at,
                Err(Stop::Short) => break,
                Err(Stop::Bad(e)) => return Err(e),
            }
        }
        if self.ended && done < buf.len() {
            return Err(format!(
                "{} bytes after the end of the COPY data",
                buf.len() - done
            ));
        }
        Ok(done)
    }

    /// One row, or the end of the data.
    fn row(&mut self, r: &mut Reader<'_>) -> Result<(), Stop> {
        let fields = r.i16()?;
        if fields == -1 {
            self.ended = true;
            return Ok(());
        }
        let expected = if self.no_details { 11 } else { 12 };
        if fields != expected {
            return Err(format!("a COPY row of {fields} fields, expected {expected}").into());
        }
        let need = |v: Option<i64>, what: &str| v.ok_or_else(|| format!("{what} is NULL"));
        let id = need(int8(r.field()?, "id")?, "id")?;
        let incident_id = need(int8(r.field()?, "incident_id")?, "incident_id")?;
        let entry_type = label(r.field()?, "type")?.ok_or("type is NULL")?;
        let created_at = timestamptz(r.field()?, "created_at")?.ok_or("created_at is NULL")?;
        let entry = Entry {
            id,
            incident_id,
            entry_type,
            created_at,
            agent_type: label(r.field()?, "agent_type")?,
            agent_id: int8(r.field()?, "agent_id")?,
            channel: label(r.field()?, "channel")?,
            user_id: int8(r.field()?, "user_id")?,
            assignee_ids: int8_array(r.field()?, "assignee_ids")?,
            escalation_policy_id: int8(r.field()?, "escalation_policy_id")?,
            details: if self.no_details {
                None
            } else {
                text(r.field()?, "details")?
            },
        };
        let account = need(int8(r.field()?, "account_id")?, "account_id")?;
        self.rows
            .entry(entry.incident_id)
            .or_insert_with(|| (account, Vec::new()))
            .1
            .push(entry);
        Ok(())
    }
}

/// The signature, flags and header extension that open the data.
fn header(r: &mut Reader<'_>) -> Result<(), Stop> {
    if r.take(SIGNATURE.len())? != SIGNATURE {
        return Err("not PostgreSQL binary COPY data".into());
    }
    let _flags = r.i32()?;
    let ext = r.i32()?.max(0) as usize;
    r.take(ext)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, v: Option<&[u8]>) {
        match v {
            None => out.extend((-1_i32).to_be_bytes()),
            Some(b) => {
                out.extend((b.len() as i32).to_be_bytes());
                out.extend(b);
            }
        }
    }

    #[test]
    fn decodes_a_row_with_nulls_and_an_array() {
        let mut buf = SIGNATURE.to_vec();
        buf.extend(0_i32.to_be_bytes());
        buf.extend(0_i32.to_be_bytes());
        buf.extend(12_i16.to_be_bytes());
        field(&mut buf, Some(&7_i64.to_be_bytes()));
        field(&mut buf, Some(&3_i64.to_be_bytes()));
        field(&mut buf, Some(b"assign"));
        // 2026-10-26T09:00:00Z
        let us = 1_793_005_200_000_000_i64 - PG_EPOCH_US;
        field(&mut buf, Some(&us.to_be_bytes()));
        field(&mut buf, None);
        field(&mut buf, None);
        field(&mut buf, Some(b"api"));
        field(&mut buf, None);
        let mut arr = Vec::new();
        for v in [1_i32, 0, 20, 2, 1] {
            arr.extend(v.to_be_bytes());
        }
        for id in [5_i64, 9] {
            arr.extend(8_i32.to_be_bytes());
            arr.extend(id.to_be_bytes());
        }
        field(&mut buf, Some(&arr));
        field(&mut buf, Some(&4_i64.to_be_bytes()));
        field(&mut buf, Some(br#"{"a": 1}"#));
        field(&mut buf, Some(&2_i64.to_be_bytes()));
        buf.extend((-1_i16).to_be_bytes());
        let rows = entries(&buf).unwrap();
        assert_eq!(rows.len(), 1);
        let (e, account) = &rows[0];
        assert_eq!((e.id, e.incident_id, *account), (7, 3, 2));
        assert_eq!(e.created_at.to_rfc3339(), "2026-10-26T09:00:00+00:00");
        assert_eq!(e.assignee_ids, Some(vec![5, 9]));
        assert_eq!(e.agent_type, None);
        assert_eq!(e.channel.as_deref(), Some("api"));
        // The usual labels are static; others are kept as read.
        assert!(matches!(e.entry_type, Label::Borrowed("assign")));
        assert!(matches!(e.channel, Some(Label::Borrowed("api"))));
        assert!(matches!(crate::rows::label("pager"), Label::Owned(ref s) if s == "pager"));
        // Found among the usual values on their bytes, else kept as read; bytes that are
        // not UTF-8 are an error.
        let of = |b: &[u8]| crate::rows::label_of(b);
        assert!(matches!(of(b"sms"), Ok(Label::Borrowed("sms"))));
        assert!(matches!(of(b"notify"), Ok(Label::Borrowed("notify"))));
        assert!(matches!(of(b"pager"), Ok(Label::Owned(ref s)) if s == "pager"));
        assert!(matches!(of("é".as_bytes()), Ok(Label::Owned(ref s)) if s == "é"));
        assert!(of(b"\xff").is_err());
        assert_eq!(e.details.as_deref(), Some(r#"{"a": 1}"#));
        // Cut short anywhere: an error, never a panic.
        for cut in 0..buf.len() {
            assert!(entries(&buf[..cut]).is_err(), "cut at {cut}");
        }
        // Fed in pieces of any size, as messages arrive: the same row.
        for size in 1..buf.len() {
            let mut d = Decoder::default();
            for piece in buf.chunks(size) {
                d.feed(piece);
            }
            let pieces = d.finish().unwrap();
            assert_eq!(pieces.len(), 1, "pieces of {size}");
            let (account, log) = &pieces[&3];
            assert_eq!((*account, log.len()), (2, 1), "pieces of {size}");
            assert_eq!(log[0].assignee_ids, Some(vec![5, 9]), "pieces of {size}");
            assert_eq!(log[0].details, e.details, "pieces of {size}");
        }
        // Anything after the end marker is an error.
        let mut longer = buf.clone();
        longer.push(0);
        assert!(entries(&longer).is_err());
    }
}
