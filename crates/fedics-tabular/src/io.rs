//! Opening data files: plain text or gzip (detected by its magic bytes, not by name).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Result, TabularError};

const BUF: usize = 1 << 18;

/// Opens a file for reading; gzip content (magic bytes `1f 8b`) is decompressed on the fly.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let io = |source| TabularError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut r = BufReader::with_capacity(BUF, file);
    let gz = r.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    if gz {
        Ok(Box::new(BufReader::with_capacity(
            BUF,
            MultiGzDecoder::new(r),
        )))
    } else {
        Ok(Box::new(r))
    }
}

/// Wraps what the CSV parser reads to tell the 1-based line where a record starts.
///
/// The `csv` crate's own `Position::line` is off after blank lines and with CRLF line
/// ends, so lines are counted here: for every line with content (a byte other than CR or
/// LF, a leading UTF-8 BOM excepted) the offset of its first content byte is queued.
/// A record's `Position::byte` lies at or before its first content byte (after the
/// previous record's terminator), so its line is the first queued line whose content
/// starts at or after that byte.
pub(crate) struct LineTracker<R> {
    inner: R,
    offset: u64,
    line: u64,
    has_content: bool,
    starts: VecDeque<(u64, u64)>,
}

impl<R> LineTracker<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            line: 1,
            has_content: false,
            starts: VecDeque::new(),
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.line += 1;
                self.has_content = false;
            } else if !self.has_content
                && b != b'\r'
                && !(self.offset < 3 && matches!(b, 0xEF | 0xBB | 0xBF))
            {
                self.has_content = true;
                self.starts.push_back((self.offset, self.line));
            }
            self.offset += 1;
        }
    }

    /// The line of the record whose `csv::Position::byte` is `byte`. Call with
    /// non-decreasing positions (records in order).
    pub(crate) fn line_at(&mut self, byte: u64) -> u64 {
        while self.starts.front().is_some_and(|&(off, _)| off < byte) {
            self.starts.pop_front();
        }
        self.starts.front().map_or(self.line, |&(_, l)| l)
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n]);
        Ok(n)
    }
}

/// A CSV reader over a plain or gzip file that knows the line of each record.
pub(crate) type CsvReader = csv::Reader<LineTracker<Box<dyn BufRead>>>;

/// Opens a CSV file with the given builder settings.
pub(crate) fn open_csv(path: &Path, builder: &csv::ReaderBuilder) -> Result<CsvReader> {
    Ok(builder.from_reader(LineTracker::new(open_text(path)?)))
}

/// The 1-based line where the record just read starts.
pub(crate) fn record_line(rdr: &mut CsvReader, rec: &csv::ByteRecord) -> u64 {
    let byte = rec.position().map_or(0, csv::Position::byte);
    rdr.get_mut().line_at(byte)
}

/// Maps an error of the CSV parser to ours, with the line where the parser stood.
pub(crate) fn csv_error(path: &Path, e: csv::Error) -> TabularError {
    let line = e.position().map(csv::Position::line);
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => TabularError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => TabularError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// Parses a trimmed numeric cell. `None` when the text is not a number; `Some` may be
/// NaN or infinite (Rust accepts `NaN`, `inf`, `Infinity`, case-insensitively).
pub(crate) fn parse_f64(bytes: &[u8]) -> Option<f64> {
    std::str::from_utf8(bytes).ok()?.trim().parse::<f64>().ok()
}

/// A cell as text for an error message (lossy for invalid UTF-8, shortened if long).
pub(crate) fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 80 {
        let mut t: String = s.chars().take(77).collect();
        t.push_str("...");
        t
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn reads_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.txt");
        std::fs::write(&plain, b"hello\n").unwrap();
        let gz = dir.path().join("a.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(b"hello\n").unwrap();
        enc.finish().unwrap();
        for p in [&plain, &gz] {
            let mut s = String::new();
            open_text(p).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello\n");
        }
        let e = open_text(&dir.path().join("nope.csv")).err().unwrap();
        assert!(e.to_string().contains("nope.csv: cannot read"), "{e}");
    }

    fn lines(text: &[u8], has_headers: bool) -> Vec<(String, u64)> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(has_headers)
            .flexible(true)
            .from_reader(LineTracker::new(text));
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while rdr.read_byte_record(&mut rec).unwrap() {
            let byte = rec.position().unwrap().byte();
            let line = rdr.get_mut().line_at(byte);
            out.push((String::from_utf8_lossy(&rec[0]).into_owned(), line));
        }
        out
    }

    #[test]
    fn record_lines_as_an_editor_counts() {
        let l = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|&(s, n)| (s.to_string(), n)).collect()
        };
        assert_eq!(lines(b"\na,b\n1,2\n", false), l(&[("a", 2), ("1", 3)]));
        assert_eq!(
            lines(b"a,b\n1,2\n\n3,4\n\n\n5,6\n", false),
            l(&[("a", 1), ("1", 2), ("3", 4), ("5", 7)])
        );
        assert_eq!(
            lines(b"a,b\r\n1,2\r\n\r\n3,4\r\n", false),
            l(&[("a", 1), ("1", 2), ("3", 4)])
        );
        assert_eq!(
            lines(b"a,b\n\"x\ny\",2\n3,4\n", false),
            l(&[("a", 1), ("x\ny", 2), ("3", 4)])
        );
        assert_eq!(lines(b"\xEF\xBB\xBFa,b\n1,2", true), l(&[("1", 2)]));
        assert_eq!(lines(b"\n\na,b\n\n1,2", true), l(&[("1", 5)]));
    }

    #[test]
    fn number_parsing() {
        assert_eq!(parse_f64(b" 1.5 "), Some(1.5));
        assert!(parse_f64(b"Infinity").is_some_and(|x| x == f64::INFINITY));
        assert!(parse_f64(b"-inf").is_some_and(|x| x == f64::NEG_INFINITY));
        assert!(parse_f64(b"NaN").is_some_and(f64::is_nan));
        assert!(parse_f64(b"nan").is_some_and(f64::is_nan));
        assert_eq!(parse_f64(b"tcp"), None);
        assert_eq!(parse_f64(b""), None);
    }
}
