//! Strict JSON reading and deterministic, finite-only JSON writing.
//!
//! Every input file of the contract goes through [`read_json`] (or
//! [`from_json_bytes`]), which rejects, in this order:
//!
//! 1. a file larger than [`MAX_INPUT_BYTES`] (1 GiB) — [`Error::LimitExceeded`];
//! 2. a UTF-8 byte-order mark and invalid UTF-8;
//! 3. malformed JSON, **duplicate keys in any object** (also inside maps and
//!    in parts of a document that the target type ignores) and `null` anywhere
//!    (an optional field is left out, never `null`);
//! 4. anything the target type refuses: unknown fields (every input wire type
//!    is `deny_unknown_fields`), missing fields, wrong types.
//!
//! Errors are [`Error::Json`] with `field` the path where parsing stopped
//! (`views[1].carm.sid_mm`, `.` for the document root), built with
//! [`serde_path_to_error`]. [`one_line_error`] formats any [`Error`] as the
//! one line the command line prints: `FILE: FIELD: what is wrong`, at most
//! [`MAX_ERROR_CHARS`] characters, never echoing an input value longer than
//! [`MAX_ECHO_CHARS`] characters.
//!
//! Writing ([`to_json_string`], [`write_json_atomic`]) is pretty-printed in
//! the declaration order of the wire structs (deterministic), and refuses a
//! non-finite number with an error naming its field instead of writing
//! `null`.

use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::path::Path;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Largest input file accepted, bytes (contract limit: 1 GiB).
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Longest one-line error message, characters (contract).
pub const MAX_ERROR_CHARS: usize = 300;

/// Longest input value echoed verbatim in an error message, characters
/// (contract); longer quoted values are shortened.
pub const MAX_ECHO_CHARS: usize = 40;

/// Reads and parses one JSON input file strictly (see the module docs).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::LimitExceeded`] above
/// [`MAX_INPUT_BYTES`], [`Error::Json`] naming the field for everything else.
///
/// # Example
/// ```
/// use avnplan::io::json::read_json;
/// let dir = std::env::temp_dir().join("avnplan_doc_read_json");
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("v.json");
/// std::fs::write(&path, b"[1.5, 2.5]").unwrap();
/// let v: Vec<f64> = read_json(&path).unwrap();
/// approx::assert_relative_eq!(v[1], 2.5);
/// std::fs::write(&path, b"{\"a\": 1, \"a\": 2}").unwrap();
/// assert!(read_json::<serde_json::Value>(&path).is_err());
/// ```
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_limited(path)?;
    from_json_bytes(&bytes)
}

/// Reads a whole file, refusing files above [`MAX_INPUT_BYTES`] before
/// reading them.
///
/// # Errors
/// [`Error::Io`], or [`Error::LimitExceeded`] naming `file size (bytes)`.
pub fn read_limited(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > MAX_INPUT_BYTES {
        return Err(size_limit_error(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // Guard against files that grow while being read.
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(size_limit_error(bytes.len() as u64));
    }
    Ok(bytes)
}

fn size_limit_error(actual: u64) -> Error {
    Error::LimitExceeded {
        what: "file size (bytes)".into(),
        limit: MAX_INPUT_BYTES as usize,
        actual: usize::try_from(actual).unwrap_or(usize::MAX),
    }
}

/// Parses JSON bytes strictly into `T` (see the module docs).
///
/// # Errors
/// [`Error::LimitExceeded`] above [`MAX_INPUT_BYTES`]; [`Error::Json`] with
/// the field path for a byte-order mark, invalid UTF-8, malformed JSON,
/// duplicate keys, `null`, unknown or missing fields and wrong types.
///
/// # Example
/// ```
/// use avnplan::io::json::from_json_bytes;
/// use avnplan::Error;
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct A { x_mm: f64 }
/// let a: A = from_json_bytes(br#"{"x_mm": 2.0}"#).unwrap();
/// approx::assert_relative_eq!(a.x_mm, 2.0);
/// let e = from_json_bytes::<A>(br#"{"x_mm": "two"}"#).unwrap_err();
/// assert!(matches!(e, Error::Json { ref field, .. } if field == "x_mm"));
/// ```
pub fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    check_document(bytes)?;
    typed(bytes)
}

/// Like [`from_json_bytes`], but first checks that the document is an object
/// whose `"schema"` is `schema` (e.g. `"avnplan.case/1"`), so that a wrong
/// kind of file is named as such rather than by its first unknown field.
///
/// # Errors
/// As [`from_json_bytes`]; [`Error::Json`] on field `schema` when it is
/// missing or different.
///
/// # Example
/// ```
/// use avnplan::io::json::from_json_bytes_with_schema;
/// let v: serde_json::Value =
///     from_json_bytes_with_schema(br#"{"schema": "x/1", "a": 1}"#, "x/1").unwrap();
/// approx::assert_relative_eq!(v["a"].as_f64().unwrap(), 1.0);
/// assert!(from_json_bytes_with_schema::<serde_json::Value>(br#"{"schema": "y/1"}"#, "x/1").is_err());
/// ```
pub fn from_json_bytes_with_schema<T: DeserializeOwned>(bytes: &[u8], schema: &str) -> Result<T> {
    check_document(bytes)?;
    #[derive(Deserialize)]
    struct Probe {
        schema: Option<String>,
    }
    let probe: Probe = typed(bytes)?;
    match probe.schema {
        None => Err(json_error(
            "schema",
            format!("missing: expected \"{schema}\""),
        )),
        Some(s) if s != schema => Err(json_error(
            "schema",
            sanitize_message(&format!("expected \"{schema}\", got \"{s}\"")),
        )),
        Some(_) => typed(bytes),
    }
}

/// [`read_json`] with the schema check of [`from_json_bytes_with_schema`].
///
/// # Errors
/// As [`read_json`] and [`from_json_bytes_with_schema`].
pub fn read_json_with_schema<T: DeserializeOwned>(path: &Path, schema: &str) -> Result<T> {
    let bytes = read_limited(path)?;
    from_json_bytes_with_schema(&bytes, schema)
}

fn typed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(path_error)?;
    de.end()
        .map_err(|e| json_error(".", clean_serde_message(&e)))?;
    Ok(value)
}

/// Size, byte-order mark, UTF-8, syntax, duplicate keys and nulls.
fn check_document(bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(size_limit_error(bytes.len() as u64));
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(json_error(
            ".",
            "starts with a UTF-8 byte-order mark (not allowed)",
        ));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        let (line, col) = line_col(bytes, e.valid_up_to());
        return Err(json_error(
            ".",
            format!("invalid UTF-8 at line {line} column {col}"),
        ));
    }
    // Pass 1: syntax, duplicate keys and nulls, over the whole document.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize::<_, StrictWalk>(&mut de).map_err(|e| {
        // Name the duplicated key itself in the field path.
        let msg = e.inner().to_string();
        let key = msg
            .strip_prefix("duplicate key `")
            .and_then(|rest| rest.rfind('`').map(|end| rest[..end].to_string()));
        let container = e.path().to_string();
        match key {
            Some(k) => {
                let field = if container == "." {
                    k
                } else {
                    format!("{container}.{k}")
                };
                json_error(sanitize_field(&field), clean_serde_message(e.inner()))
            }
            None => path_error(e),
        }
    })?;
    de.end()
        .map_err(|e| json_error(".", clean_serde_message(&e)))?;
    Ok(())
}

fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn json_error(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Json {
        field: field.into(),
        reason: reason.into(),
    }
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let field = e.path().to_string();
    let reason = clean_serde_message(e.inner());
    json_error(sanitize_field(&field), reason)
}

/// The serde_json message, made safe to print: long quoted values
/// shortened, control characters replaced.
fn clean_serde_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = if msg.contains("EOF while parsing") {
        msg.replacen("EOF while parsing", "file ends inside", 1)
    } else {
        msg
    };
    sanitize_message(&msg)
}

/// Walks any JSON document, refusing duplicate keys and `null`.
struct StrictWalk;

impl<'de> Deserialize<'de> for StrictWalk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictWalk;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<StrictWalk, E> {
        Ok(StrictWalk)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<StrictWalk, E> {
        Ok(StrictWalk)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<StrictWalk, E> {
        Ok(StrictWalk)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<StrictWalk, E> {
        Ok(StrictWalk)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<StrictWalk, E> {
        Ok(StrictWalk)
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<StrictWalk, E> {
        Err(E::custom(
            "null is not allowed (leave an optional field out)",
        ))
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<StrictWalk, E> {
        self.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<StrictWalk, A::Error> {
        while seq.next_element::<StrictWalk>()?.is_some() {}
        Ok(StrictWalk)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<StrictWalk, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value::<StrictWalk>()?;
        }
        Ok(StrictWalk)
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<String, D::Error> {
        String::deserialize(d)
    }
}

/// An integer read from JSON: accepts `3` and also `3.0` (a JSON number
/// with an integral value), refuses `3.5`; written as a plain integer.
///
/// Used for the contract's integer fields (`passes`, `image_size_px`,
/// `frame`) so that range checks can name the field with the value's
/// actual range error rather than a type error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Integer(pub i64);

impl Serialize for Integer {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Integer, E> {
                Ok(Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Integer, E> {
                i64::try_from(v)
                    .map(Integer)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Integer, E> {
                // 2^53: beyond it not every integer is representable.
                if v.is_finite() && v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 {
                    #[allow(
                        clippy::cast_possible_truncation,
                        reason = "checked integral and in range"
                    )]
                    Ok(Integer(v as i64))
                } else {
                    Err(E::custom(format!("expected an integer, got {v}")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Serialises `v` as pretty JSON (two-space indent, struct field order,
/// trailing newline).
///
/// # Errors
/// [`Error::Invalid`] naming the field of the first non-finite number (or of
/// any other value that would be written as `null`): every number written is
/// finite and no field is `null`.
///
/// # Example
/// ```
/// use avnplan::io::json::to_json_string;
/// #[derive(serde::Serialize)]
/// struct A { x_mm: f64 }
/// assert_eq!(to_json_string(&A { x_mm: 1.5 }).unwrap(), "{\n  \"x_mm\": 1.5\n}\n");
/// assert!(to_json_string(&A { x_mm: f64::NAN }).is_err());
/// ```
pub fn to_json_string<T: Serialize>(v: &T) -> Result<String> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, NoNullFormatter(Default::default()));
    if let Err(e) = v.serialize(&mut ser) {
        return Err(match serde_json::to_value(v) {
            Ok(value) => match find_null(&value, String::new()) {
                Some(path) => Error::invalid(
                    if path.is_empty() {
                        ".".to_string()
                    } else {
                        path
                    },
                    "not a finite number (NaN or infinity cannot be written)",
                ),
                None => Error::invalid(".", format!("cannot be written as JSON: {e}")),
            },
            Err(e2) => Error::invalid(".", format!("cannot be written as JSON: {e2}")),
        });
    }
    out.push(b'\n');
    String::from_utf8(out).map_err(|_| Error::invalid(".", "output is not UTF-8"))
}

fn find_null(v: &serde_json::Value, path: String) -> Option<String> {
    match v {
        serde_json::Value::Null => Some(path),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_null(x, format!("{path}[{i}]"))),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            find_null(x, p)
        }),
        _ => None,
    }
}

/// The pretty formatter, refusing `null` (which serde_json writes for
/// non-finite floats and for `None`).
struct NoNullFormatter(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for NoNullFormatter {
    fn write_null<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "null or non-finite number",
        ))
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Writes `v` as pretty JSON to `path` atomically: the text goes to a
/// temporary file in the same folder, which is then renamed over `path`.
/// On any error no file (partial or temporary) is left behind and an
/// existing `path` is untouched.
///
/// # Errors
/// As [`to_json_string`] (nothing is created), or [`Error::Io`].
///
/// # Example
/// ```
/// use avnplan::io::json::{read_json, write_json_atomic};
/// let dir = std::env::temp_dir().join("avnplan_doc_write_json");
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("out.json");
/// write_json_atomic(&path, &vec![0.25_f64]).unwrap();
/// let v: Vec<f64> = read_json(&path).unwrap();
/// approx::assert_relative_eq!(v[0], 0.25);
/// assert!(write_json_atomic(&dir.join("bad.json"), &vec![f64::NAN]).is_err());
/// assert!(!dir.join("bad.json").exists());
/// ```
pub fn write_json_atomic<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let text = to_json_string(v)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("output", "the output path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: the temporary file may not exist.
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Formats an error as the command line's one line:
/// `FILE: FIELD: what is wrong` (`FIELD` is `.` when the error concerns the
/// whole file), at most [`MAX_ERROR_CHARS`] characters, with no line breaks
/// or control characters, and with every quoted input value longer than
/// [`MAX_ECHO_CHARS`] characters shortened.
///
/// # Example
/// ```
/// use avnplan::io::json::one_line_error;
/// use avnplan::Error;
/// let e = Error::invalid("views[1].carm.sod_mm", "must be < sid_mm");
/// let line = one_line_error(std::path::Path::new("case.json"), &e);
/// assert_eq!(line, "case.json: views[1].carm.sod_mm: must be < sid_mm");
/// ```
#[must_use]
pub fn one_line_error(file: &Path, err: &Error) -> String {
    let file_s = shorten_path(&file.display().to_string());
    let (field, msg) = match err {
        Error::Io { path, source } => {
            let what = if path == file {
                format!("cannot read or write the file: {source}")
            } else {
                format!("{}: {source}", shorten_path(&path.display().to_string()))
            };
            (".".to_string(), what)
        }
        other => {
            let s = other.to_string();
            match s.split_once(": ") {
                Some((f, m)) if !f.is_empty() => (f.to_string(), m.to_string()),
                _ => (".".to_string(), s),
            }
        }
    };
    let line = format!(
        "{}: {}: {}",
        file_s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>(),
        sanitize_field(&field),
        sanitize_message(&msg)
    );
    truncate_chars(&line, MAX_ERROR_CHARS)
}

/// Keeps a path readable within the line budget: the last 100 characters.
fn shorten_path(p: &str) -> String {
    let n = p.chars().count();
    if n <= 100 {
        p.to_string()
    } else {
        let tail: String = p.chars().skip(n - 97).collect();
        format!("...{tail}")
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 3).collect();
    out.push_str("...");
    out
}

/// Shortens a value that is to be echoed: at most [`MAX_ECHO_CHARS`]
/// characters are kept verbatim, else its first characters and its length.
fn shorten_value(v: &str) -> String {
    let n = v.chars().count();
    if n <= MAX_ECHO_CHARS {
        v.to_string()
    } else {
        let head: String = v.chars().take(16).collect();
        format!("{head}... ({n} chars)")
    }
}

/// Field paths echo object keys (an unknown key, say): shorten long
/// segments and drop control characters.
fn sanitize_field(f: &str) -> String {
    let f: String = f
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    f.split('.')
        .map(shorten_value)
        .collect::<Vec<_>>()
        .join(".")
}

/// Replaces control characters by spaces and shortens every quoted
/// (`` `...` `` or `"..."`) segment longer than [`MAX_ECHO_CHARS`]; an
/// unquoted run of more than [`MAX_ECHO_CHARS`] non-space characters is
/// shortened too.
pub(crate) fn sanitize_message(s: &str) -> String {
    let chars: Vec<char> = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' || c == '"' {
            let close = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .map(|p| p + i + 1);
            let end = close.unwrap_or(chars.len());
            let inner: String = chars[i + 1..end].iter().collect();
            out.push(c);
            out.push_str(&shorten_value(&inner));
            if close.is_some() {
                out.push(c);
            }
            i = end + 1;
        } else if c.is_whitespace() {
            out.push(c);
            i += 1;
        } else {
            let end = chars[i..]
                .iter()
                .position(|d| d.is_whitespace() || *d == '`' || *d == '"')
                .map_or(chars.len(), |p| p + i);
            let word: String = chars[i..end].iter().collect();
            out.push_str(&shorten_value(&word));
            i = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields are only parsed")]
    struct Inner {
        sid_mm: f64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields are only parsed")]
    struct Outer {
        views: Vec<Inner>,
    }

    fn err<T: DeserializeOwned + fmt::Debug>(s: &str) -> (String, String) {
        match from_json_bytes::<T>(s.as_bytes()).unwrap_err() {
            Error::Json { field, reason } => (field, reason),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn paths_name_the_field() {
        let (f, r) = err::<Outer>(r#"{"views": [{"sid_mm": 1}, {"sid_mm": "x"}]}"#);
        assert_eq!(f, "views[1].sid_mm");
        assert!(r.contains("invalid type"), "{r}");
        let (f, r) = err::<Outer>(r#"{"views": [{"sid_mm": 1, "sod_mm": 2}]}"#);
        assert!(f.starts_with("views[0]"), "{f}");
        assert!(r.contains("unknown field `sod_mm`"), "{r}");
    }

    #[test]
    fn duplicates_and_nulls_anywhere() {
        let (f, r) = err::<serde_json::Value>(r#"{"a": {"b": 1, "b": 2}}"#);
        assert_eq!(f, "a.b");
        assert!(r.contains("duplicate key `b`"), "{r}");
        let (_, r) = err::<std::collections::BTreeMap<String, u64>>(r#"{"k": 1, "k": 1}"#);
        assert!(r.contains("duplicate key"), "{r}");
        let (f, r) = err::<serde_json::Value>(r#"{"a": [1, null]}"#);
        assert_eq!(f, "a[1]");
        assert!(r.contains("null"), "{r}");
    }

    #[test]
    fn bom_utf8_and_trailing() {
        let (_, r) = err::<serde_json::Value>("\u{feff}{}");
        assert!(r.contains("byte-order mark"), "{r}");
        let bytes = b"{\"a\": \"\xff\"}";
        let e = from_json_bytes::<serde_json::Value>(bytes).unwrap_err();
        assert!(e.to_string().contains("invalid UTF-8"), "{e}");
        let (_, r) = err::<serde_json::Value>("{} x");
        assert!(r.contains("trailing"), "{r}");
        let (_, r) = err::<serde_json::Value>("{\"a\": [1, 2");
        assert!(r.contains("file ends"), "{r}");
    }

    #[test]
    fn integers() {
        let v: Vec<Integer> = from_json_bytes(b"[1, 2.0, -3]").unwrap();
        assert_eq!(v, vec![Integer(1), Integer(2), Integer(-3)]);
        assert!(from_json_bytes::<Integer>(b"1.5").is_err());
        assert!(from_json_bytes::<Integer>(b"\"1\"").is_err());
        assert_eq!(to_json_string(&Integer(7)).unwrap(), "7\n");
    }

    #[test]
    fn sanitizing() {
        let long = "x".repeat(100);
        let s = sanitize_message(&format!("unknown variant `{long}`, expected `a`"));
        assert!(!s.contains(&"x".repeat(41)), "{s}");
        assert!(s.contains("(100 chars)"), "{s}");
        assert_eq!(sanitize_message("a\nb"), "a b");
        let multi = "é".repeat(400);
        let line = one_line_error(Path::new("f.json"), &Error::invalid("f", multi));
        assert!(line.chars().count() <= MAX_ERROR_CHARS);
    }

    #[test]
    fn null_refused_on_output() {
        #[derive(Serialize)]
        struct W {
            a: Vec<f64>,
        }
        let e = to_json_string(&W {
            a: vec![1.0, f64::INFINITY],
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a[1]: not a finite number (NaN or infinity cannot be written)"
        );
    }
}
