//! `.npy` I/O for f32 C-order arrays, through the npyz crate.
//!
//! Reading is strict: little-endian `<f4` in C order only, and a header
//! whose shape claims more data than the file holds, or more elements than
//! the caller allows, is rejected before anything that large is allocated.
//! Writing goes to a temporary file in the target's directory and is renamed
//! into place only when complete, so a failure never leaves a half-written
//! file behind.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

/// Why a `.npy` file was rejected. Each message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The header is not a valid `.npy` header.
    #[error("not a valid .npy file: {0}")]
    Corrupt(String),
    /// The dtype is not `<f4`.
    #[error("dtype {0} is not supported (expected little-endian float32 '<f4')")]
    DType(String),
    /// Fortran (column-major) order.
    #[error("Fortran-order arrays are not supported (expected C order)")]
    FortranOrder,
    /// The shape has the wrong number of dimensions.
    #[error("expected {expected} dimensions, got shape {shape:?}")]
    Rank {
        /// Dimensions required.
        expected: usize,
        /// Shape found.
        shape: Vec<u64>,
    },
    /// The header claims more data than the file holds.
    #[error("truncated: shape {shape:?} needs {needed} data bytes but the file has {available}")]
    Truncated {
        /// Shape in the header.
        shape: Vec<u64>,
        /// Bytes the shape needs.
        needed: u64,
        /// Bytes after the header.
        available: u64,
    },
    /// More elements than allowed.
    #[error("shape {shape:?} has {elements} elements, more than the limit of {max}")]
    TooLarge {
        /// Shape in the header.
        shape: Vec<u64>,
        /// Its element count (saturating).
        elements: u64,
        /// The limit.
        max: u64,
    },
}

/// An f32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape (C order).
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: Vec<f32>,
}

impl NpyArray {
    /// The shape as `[n, c, h, w]`.
    ///
    /// # Errors
    /// [`NpyError::Rank`] unless the array has 4 dimensions.
    pub fn nchw(&self) -> Result<[usize; 4], NpyError> {
        <[usize; 4]>::try_from(self.shape.as_slice()).map_err(|_| NpyError::Rank {
            expected: 4,
            shape: self.shape.iter().map(|&d| d as u64).collect(),
        })
    }
}

/// An opened, checked file: reader, shape, data bytes needed, data offset,
/// file length.
type Opened = (npyz::NpyFile<BufReader<File>>, Vec<u64>, u64, u64, u64);

/// Opens a `.npy` file and checks everything its header fixes: dtype,
/// order, that the element count is at most `max_elements`, and that the
/// file holds the data the shape claims. Nothing is allocated for the data.
fn open_checked(path: &Path, max_elements: u64) -> Result<Opened, NpyError> {
    let mut file = File::open(path).map_err(|e| NpyError::Io(e.to_string()))?;
    let file_len = file
        .metadata()
        .map_err(|e| NpyError::Io(e.to_string()))?
        .len();
    let data_offset = data_offset(&mut file)?;
    let npy =
        npyz::NpyFile::new(BufReader::new(file)).map_err(|e| NpyError::Corrupt(one_line(&e)))?;
    let dtype = npy.dtype();
    match &dtype {
        npyz::DType::Plain(ts) if ts.to_string() == "<f4" => {}
        other => return Err(NpyError::DType(other.descr())),
    }
    if npy.order() != npyz::Order::C {
        return Err(NpyError::FortranOrder);
    }
    let shape = npy.shape().to_vec();
    let elements = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let elements = match elements {
        Some(e) if e <= max_elements => e,
        e => {
            return Err(NpyError::TooLarge {
                shape,
                elements: e.unwrap_or(u64::MAX),
                max: max_elements,
            });
        }
    };
    // Refuse before allocating when the data cannot be there.
    let needed = elements * 4;
    let available = file_len.saturating_sub(data_offset);
    if needed > available {
        return Err(NpyError::Truncated {
            shape,
            needed,
            available,
        });
    }
    Ok((npy, shape, needed, data_offset, file_len))
}

/// Where the data starts: after the magic, version, header length and
/// header (format 1.0 has a 2-byte header length, 2.0 and 3.0 a 4-byte one).
/// Leaves `file` at its start.
fn data_offset(file: &mut File) -> Result<u64, NpyError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(NpyError::Io(e.to_string())),
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| NpyError::Io(e.to_string()))?;
    if got < 10 || &head[..6] != b"\x93NUMPY" {
        return Err(NpyError::Corrupt("magic not found for NPY file".into()));
    }
    match head[6] {
        1 => Ok(10 + u64::from(u16::from_le_bytes([head[8], head[9]]))),
        2 | 3 if got == 12 => {
            Ok(12 + u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]])))
        }
        v => Err(NpyError::Corrupt(format!("unsupported format version {v}"))),
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a `.npy` file's header as [`read_f32`] would (dtype, order,
/// truncation) without reading the data, and returns its shape. Use it to
/// validate inputs cheaply before committing to work; the element limit is
/// not applied here.
///
/// # Errors
/// Any [`NpyError`] except [`NpyError::TooLarge`].
pub fn read_header(path: &Path) -> Result<Vec<usize>, NpyError> {
    let (_, shape, ..) = open_checked(path, u64::MAX / 4)?;
    shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| NpyError::TooLarge {
            elements: u64::MAX,
            max: usize::MAX as u64,
            shape,
        })
}

/// Reads a little-endian f32 C-order `.npy` file with at most
/// `max_elements` elements.
///
/// # Errors
/// Any [`NpyError`].
pub fn read_f32(path: &Path, max_elements: u64) -> Result<NpyArray, NpyError> {
    let (npy, shape, needed, data_offset, file_len) = open_checked(path, max_elements)?;
    let data: Vec<f32> = npy.into_vec().map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            NpyError::Truncated {
                shape: shape.clone(),
                needed,
                available: file_len.saturating_sub(data_offset),
            }
        } else {
            NpyError::Corrupt(one_line(&e))
        }
    })?;
    if data.len() as u64 * 4 != needed {
        return Err(NpyError::Corrupt(format!(
            "expected {} elements, read {}",
            needed / 4,
            data.len()
        )));
    }
    Ok(NpyArray {
        shape: shape.iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Writes a file atomically: `write` fills a temporary file beside `path`,
/// which is synced and renamed to `path` on success.
///
/// # Errors
/// I/O errors and `write`'s; on error no file is left at `path` (nor the
/// temporary).
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `data` with `shape` as a little-endian f32 C-order `.npy` file,
/// atomically ([`write_atomic`]).
///
/// # Errors
/// I/O errors; on error no file is left at `path` (nor the temporary).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    use npyz::WriterBuilder;
    write_atomic(path, |w| {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut npy = npyz::WriteOptions::<f32>::new()
            .dtype(npyz::DType::Plain(
                "<f4".parse().map_err(|_| std::io::Error::other("dtype"))?,
            ))
            .shape(&shape)
            .writer(w)
            .begin_nd()?;
        npy.extend(data.iter().copied())?;
        npy.finish()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|v| v as f32 * 0.5).collect();
        write_f32(&p, &[1, 2, 3, 4], &data).unwrap();
        let a = read_f32(&p, 1 << 20).unwrap();
        assert_eq!(a.shape, vec![1, 2, 3, 4]);
        assert_eq!(a.data, data);
        assert_eq!(a.nchw().unwrap(), [1, 2, 3, 4]);
        assert!(matches!(
            read_f32(&p, 10),
            Err(NpyError::TooLarge { elements: 24, .. })
        ));
        // Truncate the data.
        let bytes = std::fs::read(&p).unwrap();
        let t = dir.path().join("t.npy");
        std::fs::write(&t, &bytes[..bytes.len() - 8]).unwrap();
        assert!(
            matches!(read_f32(&t, 1 << 20), Err(NpyError::Truncated { .. })),
            "{:?}",
            read_f32(&t, 1 << 20)
        );
        // Garbage.
        std::fs::write(&t, b"not an npy file at all").unwrap();
        assert!(matches!(read_f32(&t, 1 << 20), Err(NpyError::Corrupt(_))));
        assert!(matches!(
            read_f32(&dir.path().join("missing.npy"), 1),
            Err(NpyError::Io(_))
        ));
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
