//! One SQL text for both backends: `$N` parameters, `{now}` for the current time,
//! `{now+$N}` for the current time plus `$N` seconds, `{json}` for the JSON column type.

use mttx_migrations::Pool;

/// Runs the same query-building expression against either backend.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            mttx_migrations::Pool::Postgres($p) => $body,
            mttx_migrations::Pool::Sqlite($p) => $body,
        }
    };
}

/// `sql` in the dialect of `pool`'s backend.
pub(crate) fn dialect(pool: &Pool, sql: &str) -> String {
    translate(matches!(pool, Pool::Postgres(_)), sql)
}

/// `sql` for PostgreSQL (`postgres`) or SQLite.
fn translate(postgres: bool, sql: &str) -> String {
    const LITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
    let (now, json) = if postgres {
        ("now()", "JSONB")
    } else {
        (LITE_NOW, "TEXT")
    };
    let mut out = sql.replace("{now}", now).replace("{json}", json);
    while let Some(at) = out.find("{now+$") {
        let end = out[at..].find('}').map_or(out.len(), |e| at + e);
        let param = &out[at + 5..end];
        let later = if postgres {
            format!("(now() + make_interval(secs => {param}))")
        } else {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', CAST({param} AS TEXT) || ' seconds')")
        };
        out.replace_range(at..=end, &later);
    }
    if postgres {
        return out;
    }
    // `?N` is SQLite's numbered parameter.
    let mut lite = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            lite.push('?');
        } else {
            lite.push(c);
        }
    }
    lite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_each_backends_sql() {
        let sql = "UPDATE t SET at = {now}, until = {now+$2}, v = CAST($1 AS {json})";
        assert_eq!(
            translate(true, sql),
            "UPDATE t SET at = now(), until = (now() + make_interval(secs => $2)), \
             v = CAST($1 AS JSONB)"
        );
        assert_eq!(
            translate(false, sql),
            "UPDATE t SET at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), until = \
             strftime('%Y-%m-%dT%H:%M:%fZ', 'now', CAST(?2 AS TEXT) || ' seconds'), \
             v = CAST(?1 AS TEXT)"
        );
    }
}
