//! Two small durable file shapes beside the log: a JSON document replaced atomically, and an
//! append-only file of JSON lines. The witness keeps its state in the first and its record of
//! misbehaviour in the second; a log keeps its witnesses' cosignatures in the second. What the
//! values mean is the caller's business.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::io::Write as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Reads a JSON document written by [`write_json_atomically`]; `None` if there is none yet.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text).map(Some).with_context(|| {
        format!(
            "{} is damaged ({}); restore it from a backup: it is never half-written, so someone \
             or something else changed it",
            path.display(),
            "not the JSON docket wrote"
        )
    })
}

/// Replaces the JSON document at `path` durably ([`replace_file`]). A crash leaves the old
/// document or the new one, never a mix.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    replace_file(path, &text, true)
}

/// Replaces the file at `path` with `bytes`: written to `<path>.tmp`, renamed over it. With
/// `durable`, the temporary file is fsync'd before the rename and the directory after it, so a
/// crash leaves the old contents or the new, never a mix and never neither.
pub fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = crate::private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    if durable {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync of directory {}", dir.display()))?;
    }
    Ok(())
}

/// An append-only file of JSON lines, each appended and fsync'd before `append` returns.
pub struct JsonLines<T> {
    path: PathBuf,
    file: File,
    _values: PhantomData<fn(T)>,
}

impl<T: Serialize + DeserializeOwned> JsonLines<T> {
    /// Opens (creating) the file for appending and returns what it holds. A last line without
    /// its newline is a write a crash interrupted, never acknowledged: it is cut. Any other line
    /// that does not read is damage, reported with its line number, and nothing is changed.
    pub fn open(path: &Path) -> Result<(JsonLines<T>, Vec<T>)> {
        let (values, good) = Self::scan(path)?;
        let file = crate::private::options()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if file.metadata()?.len() > good {
            tracing::warn!(file = %path.display(), "cutting an unfinished last line (a crash during a write)");
            file.set_len(good)?;
            file.sync_all()?;
        }
        Ok((
            JsonLines {
                path: path.to_path_buf(),
                file,
                _values: PhantomData,
            },
            values,
        ))
    }

    /// Reads the file without changing it (an unfinished last line is left out); an absent file
    /// holds nothing.
    pub fn read(path: &Path) -> Result<Vec<T>> {
        Ok(Self::scan(path)?.0)
    }

    fn scan(path: &Path) -> Result<(Vec<T>, u64)> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut values = Vec::new();
        let mut at = 0usize;
        for (number, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            if !line.ends_with(b"\n") {
                break;
            }
            match serde_json::from_slice(&line[..line.len() - 1]) {
                Ok(value) => values.push(value),
                Err(e) => bail!(
                    "{} is damaged at line {}: {e}; it is append-only and never rewritten, so \
                     restore it from a backup or move it aside",
                    path.display(),
                    number + 1
                ),
            }
            at += line.len();
        }
        Ok((values, at as u64))
    }

    /// Appends `values`, one line each, and fsyncs.
    pub fn append(&mut self, values: &[T]) -> Result<()> {
        let mut out = Vec::new();
        for value in values {
            serde_json::to_writer(&mut out, value)?;
            out.push(b'\n');
        }
        self.file
            .write_all(&out)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_and_damage_is_named() {
        let dir = std::env::temp_dir().join(format!("docket-jsonl-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.jsonl");
        let (mut file, values) = JsonLines::<u32>::open(&path).unwrap();
        assert!(values.is_empty());
        file.append(&[1, 2]).unwrap();
        drop(file);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"3")
            .unwrap();
        assert_eq!(JsonLines::<u32>::read(&path).unwrap(), vec![1, 2]);
        let (mut file, values) = JsonLines::<u32>::open(&path).unwrap();
        assert_eq!(values, vec![1, 2]);
        file.append(&[4]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n2\n4\n");
        fs::write(&path, "1\nx\n2\n").unwrap();
        let e = JsonLines::<u32>::open(&path).err().unwrap().to_string();
        assert!(e.contains("damaged at line 2"), "{e}");
        write_json_atomically(&dir.join("s.json"), &vec![1, 2]).unwrap();
        assert_eq!(
            read_json::<Vec<u32>>(&dir.join("s.json")).unwrap(),
            Some(vec![1, 2])
        );
        assert_eq!(read_json::<Vec<u32>>(&dir.join("none.json")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
