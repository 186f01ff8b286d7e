//! PostgreSQL's binary COPY format, for reading log entries at the replica's own output
//! speed: `COPY (SELECT …) TO STDOUT (FORMAT binary)` streams rows without the per-row
//! protocol messages of a query, and this decodes the few types the log uses.
//!
//! Format: an 11-byte signature, a 32-bit flags field and a header extension; then per row a
//! 16-bit field count (-1 ends the data) and per field a 32-bit length (-1 for NULL) and
//! the value in the type's binary send format (big-endian).

use chrono::{DateTime, Utc};

use crate::Entry;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the UNIX epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The SELECT list the decoder expects, in order: the entry, then its account.
pub const COLUMNS: &str = "id, incident_id, type, created_at, agent_type, agent_id, channel, user_id, \
     assignee_ids, escalation_policy_id, CAST(details AS TEXT), account_id";

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

type Field<'a> = Option<&'a [u8]>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("COPY data ends early at byte {}", self.at))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn field(&mut self) -> Result<Field<'a>, String> {
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
    let mut r = Reader { buf: b, at: 0 };
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _elem_type = r.i32()?;
    if ndim == 0 {
        return Ok(Some(Vec::new()));
    }
    if ndim != 1 {
        return Err(format!("{what}: an array of {ndim} dimensions"));
    }
    let n = r.i32()?.max(0) as usize;
    let _lower = r.i32()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // A NULL element has no id to keep.
        if let Some(v) = int8(r.field()?, what)? {
            out.push(v);
        }
    }
    Ok(Some(out))
}

/// Decodes rows of [`COLUMNS`] into entries with their account.
pub fn entries(buf: &[u8]) -> Result<Vec<(Entry, i64)>, String> {
    let mut r = Reader { buf, at: 0 };
    if r.take(SIGNATURE.len())? != SIGNATURE {
        return Err("not PostgreSQL binary COPY data".into());
    }
    let _flags = r.i32()?;
    let ext = r.i32()?.max(0) as usize;
    r.take(ext)?;
    let mut out = Vec::new();
    loop {
        let fields = r.i16()?;
        if fields == -1 {
            return Ok(out);
        }
        if fields != 12 {
            return Err(format!("a COPY row of {fields} fields, expected 12"));
        }
        let need = |v: Option<i64>, what: &str| v.ok_or_else(|| format!("{what} is NULL"));
        let id = need(int8(r.field()?, "id")?, "id")?;
        let incident_id = need(int8(r.field()?, "incident_id")?, "incident_id")?;
        let entry_type = text(r.field()?, "type")?.ok_or("type is NULL")?;
        let created_at = timestamptz(r.field()?, "created_at")?.ok_or("created_at is NULL")?;
        let entry = Entry {
            id,
            incident_id,
            entry_type,
            created_at,
            agent_type: text(r.field()?, "agent_type")?,
            agent_id: int8(r.field()?, "agent_id")?,
            channel: text(r.field()?, "channel")?,
            user_id: int8(r.field()?, "user_id")?,
            assignee_ids: int8_array(r.field()?, "assignee_ids")?,
            escalation_policy_id: int8(r.field()?, "escalation_policy_id")?,
            details: text(r.field()?, "details")?,
        };
        let account = need(int8(r.field()?, "account_id")?, "account_id")?;
        out.push((entry, account));
    }
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
        assert_eq!(e.details.as_deref(), Some(r#"{"a": 1}"#));
        // Cut short anywhere: an error, never a panic.
        for cut in 0..buf.len() {
            assert!(entries(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
