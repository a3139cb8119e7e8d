//! The workbook's zip container, its parts deflated in pieces on several cores.
//!
//! Written here rather than with the `zip` crate: that crate deflates each part as one stream
//! on the thread writing it, and a worksheet is nearly all of a workbook, so compressing it
//! (most of a workbook's time) would use one core. Here a part's bytes are deflated in pieces
//! of about 256 KiB on rayon's pool, several at once, each primed with the 32 KiB before it
//! (so matches reach across pieces as in one stream) and ended on a byte boundary (a sync
//! flush), so that the pieces laid end to end, and one empty final block, are the part's
//! deflate stream; their CRC-32s are combined in order. The container around them is small and
//! fixed by the zip format (APPNOTE 6.3): a local header before each part with its sizes in a
//! data descriptor after it (nothing is written twice, so any output works, a response body
//! too), then the central directory, in zip64 form only when the offsets need it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver};

use flate2::{Compress, Compression, FlushCompress};

use crate::{Error, Result};

const OPERATION: &str = "xlsx sink: compress";

/// Deflate's window: each piece is primed with this much of the bytes before it.
const WINDOW: usize = 32 * 1024;

/// Pieces being deflated at once: two per core of this machine's usual two, so that one is
/// always ready to write while the next are compressed.
const DEFLATING: usize = 4;

/// The empty final block that ends a deflate stream after a sync flush (pigz ends its
/// independently compressed blocks the same way): BFINAL = 1, fixed codes, end of block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// 1980-01-01 00:00, the earliest date a zip can hold: a workbook's parts carry no time.
const DOS_DATE: u16 = (1 << 5) | 1;

/// A deflated piece: its bytes, and the CRC-32 and length of what it holds.
struct Deflated {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// A part in the central directory.
struct Entry {
    name: String,
    offset: u64,
    crc: u32,
    compressed: u32,
    size: u32,
}

/// The part being written.
struct Part {
    entry: Entry,
    crc: crc32fast::Hasher,
    size: u64,
    compressed: u64,
    // The pieces being deflated, in order.
    deflating: VecDeque<Receiver<Result<Deflated>>>,
    // The last bytes of the part so far: the next piece's dictionary.
    window: Vec<u8>,
}

/// A zip file written front to back to `W`.
pub(super) struct ZipStream<W> {
    out: W,
    level: Compression,
    written: u64,
    entries: Vec<Entry>,
    part: Option<Part>,
    // Every offset in zip64 form even when it fits: lets the tests read that form back
    // without writing 4 GiB.
    zip64: bool,
}

impl<W: Write> ZipStream<W> {
    /// A zip whose parts are deflated at `level` (1 to 9).
    pub(super) fn new(out: W, level: u8) -> Self {
        ZipStream {
            out,
            level: Compression::new(u32::from(level.clamp(1, 9))),
            written: 0,
            entries: Vec::new(),
            part: None,
            zip64: false,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("xlsx sink: write", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Ends the part being written, if any, and starts the part `name`.
    pub(super) fn start(&mut self, name: String) -> Result<()> {
        self.end_part()?;
        let offset = self.written;
        let mut header = Vec::with_capacity(30 + name.len());
        header.extend_from_slice(&0x0403_4b50_u32.to_le_bytes());
        header.extend_from_slice(&20_u16.to_le_bytes()); // version needed: 2.0, deflate
        header.extend_from_slice(&0x0008_u16.to_le_bytes()); // sizes in a data descriptor
        header.extend_from_slice(&8_u16.to_le_bytes()); // deflated
        header.extend_from_slice(&0_u16.to_le_bytes()); // time
        header.extend_from_slice(&DOS_DATE.to_le_bytes());
        header.extend_from_slice(&[0; 12]); // CRC-32 and sizes: in the descriptor
        header.extend_from_slice(&name_len(&name)?.to_le_bytes());
        header.extend_from_slice(&0_u16.to_le_bytes()); // no extra field
        header.extend_from_slice(name.as_bytes());
        self.put(&header)?;
        self.part = Some(Part {
            entry: Entry {
                name,
                offset,
                crc: 0,
                compressed: 0,
                size: 0,
            },
            crc: crc32fast::Hasher::new(),
            size: 0,
            compressed: 0,
            deflating: VecDeque::with_capacity(DEFLATING),
            window: Vec::new(),
        });
        Ok(())
    }

    /// Deflates `bytes` as the next piece of the current part (on rayon's pool), writing out
    /// the earliest pieces done when enough are under way.
    pub(super) fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        let Some(part) = &mut self.part else {
            return Err(Error::internal(OPERATION, "bytes before any part"));
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let dictionary = std::mem::take(&mut part.window);
        let keep = bytes.len().min(WINDOW);
        let mut window = if keep < WINDOW {
            // A short piece: the window is what stays of the last one, then all of it.
            let old = dictionary.len().min(WINDOW - keep);
            dictionary[dictionary.len() - old..].to_vec()
        } else {
            Vec::with_capacity(WINDOW)
        };
        window.extend_from_slice(&bytes[bytes.len() - keep..]);
        part.window = window;
        let (done, deflated) = sync_channel(1);
        let level = self.level;
        rayon::spawn(move || {
            // The receiver is gone only if the workbook was dropped: nothing waits for this.
            let _ = done.send(deflate(level, &dictionary, &bytes));
        });
        part.deflating.push_back(deflated);
        while self
            .part
            .as_ref()
            .is_some_and(|p| p.deflating.len() >= DEFLATING)
        {
            self.write_deflated()?;
        }
        Ok(())
    }

    /// Waits for the earliest piece under way and writes it.
    fn write_deflated(&mut self) -> Result<()> {
        let Some(part) = &mut self.part else {
            return Ok(());
        };
        let Some(deflated) = part.deflating.pop_front() else {
            return Ok(());
        };
        let piece = deflated
            .recv()
            .map_err(|_| Error::internal(OPERATION, "a piece was lost"))??;
        part.size += piece.crc.total_len();
        part.compressed += piece.bytes.len() as u64;
        part.crc.combine(&piece.crc);
        self.put(&piece.bytes)
    }

    /// Writes out the current part's last pieces, its final block and its data descriptor.
    fn end_part(&mut self) -> Result<()> {
        while self.part.as_ref().is_some_and(|p| !p.deflating.is_empty()) {
            self.write_deflated()?;
        }
        let Some(mut part) = self.part.take() else {
            return Ok(());
        };
        self.put(&FINAL_BLOCK)?;
        part.compressed += FINAL_BLOCK.len() as u64;
        let too_large = || {
            Error::internal(
                OPERATION,
                "a part of the workbook passed 4 GiB (sheets end well before)",
            )
        };
        part.entry.crc = part.crc.clone().finalize();
        part.entry.size = u32::try_from(part.size).map_err(|_| too_large())?;
        part.entry.compressed = u32::try_from(part.compressed).map_err(|_| too_large())?;
        let mut descriptor = Vec::with_capacity(16);
        descriptor.extend_from_slice(&0x0807_4b50_u32.to_le_bytes());
        descriptor.extend_from_slice(&part.entry.crc.to_le_bytes());
        descriptor.extend_from_slice(&part.entry.compressed.to_le_bytes());
        descriptor.extend_from_slice(&part.entry.size.to_le_bytes());
        self.put(&descriptor)?;
        self.entries.push(part.entry);
        Ok(())
    }

    /// Ends the last part, writes the central directory and gives the output back.
    pub(super) fn finish(mut self) -> Result<W> {
        self.end_part()?;
        let directory_offset = self.written;
        let mut directory = Vec::new();
        for entry in &self.entries {
            let offset = u32::try_from(entry.offset)
                .ok()
                .filter(|o| *o != u32::MAX && !self.zip64);
            let version: u16 = if offset.is_some() { 20 } else { 45 };
            directory.extend_from_slice(&0x0201_4b50_u32.to_le_bytes());
            directory.extend_from_slice(&version.to_le_bytes()); // made by (MS-DOS host)
            directory.extend_from_slice(&version.to_le_bytes()); // needed
            directory.extend_from_slice(&0x0008_u16.to_le_bytes());
            directory.extend_from_slice(&8_u16.to_le_bytes());
            directory.extend_from_slice(&0_u16.to_le_bytes());
            directory.extend_from_slice(&DOS_DATE.to_le_bytes());
            directory.extend_from_slice(&entry.crc.to_le_bytes());
            directory.extend_from_slice(&entry.compressed.to_le_bytes());
            directory.extend_from_slice(&entry.size.to_le_bytes());
            directory.extend_from_slice(&name_len(&entry.name)?.to_le_bytes());
            let extra: u16 = if offset.is_some() { 0 } else { 12 };
            directory.extend_from_slice(&extra.to_le_bytes());
            // Comment length, first disk, internal and external attributes.
            directory.extend_from_slice(&[0; 10]);
            directory.extend_from_slice(&offset.unwrap_or(u32::MAX).to_le_bytes());
            directory.extend_from_slice(entry.name.as_bytes());
            if offset.is_none() {
                // The zip64 extended information: only the offset, the one field that is
                // 0xFFFFFFFF above.
                directory.extend_from_slice(&0x0001_u16.to_le_bytes());
                directory.extend_from_slice(&8_u16.to_le_bytes());
                directory.extend_from_slice(&entry.offset.to_le_bytes());
            }
        }
        self.put(&directory)?;
        let entries = self.entries.len() as u64;
        let size = directory.len() as u64;
        let fits = |n: u64, max: u64| n < max && !self.zip64;
        let mut end = Vec::with_capacity(98);
        let small =
            fits(entries, 0xFFFF) && fits(size, 0xFFFF_FFFF) && fits(directory_offset, 0xFFFF_FFFF);
        if !small {
            let record_offset = self.written;
            end.extend_from_slice(&0x0606_4b50_u32.to_le_bytes());
            end.extend_from_slice(&44_u64.to_le_bytes()); // the size of what follows
            end.extend_from_slice(&45_u16.to_le_bytes());
            end.extend_from_slice(&45_u16.to_le_bytes());
            end.extend_from_slice(&[0; 8]); // this disk, the directory's disk
            end.extend_from_slice(&entries.to_le_bytes());
            end.extend_from_slice(&entries.to_le_bytes());
            end.extend_from_slice(&size.to_le_bytes());
            end.extend_from_slice(&directory_offset.to_le_bytes());
            end.extend_from_slice(&0x0706_4b50_u32.to_le_bytes());
            end.extend_from_slice(&0_u32.to_le_bytes());
            end.extend_from_slice(&record_offset.to_le_bytes());
            end.extend_from_slice(&1_u32.to_le_bytes());
        }
        let small_entries = if small {
            u16::try_from(entries).unwrap_or(u16::MAX)
        } else {
            u16::MAX
        };
        end.extend_from_slice(&0x0605_4b50_u32.to_le_bytes());
        end.extend_from_slice(&[0; 4]); // this disk, the directory's disk
        end.extend_from_slice(&small_entries.to_le_bytes());
        end.extend_from_slice(&small_entries.to_le_bytes());
        for n in [size, directory_offset] {
            let n = if small {
                u32::try_from(n).unwrap_or(u32::MAX)
            } else {
                u32::MAX
            };
            end.extend_from_slice(&n.to_le_bytes());
        }
        end.extend_from_slice(&0_u16.to_le_bytes()); // no comment
        self.put(&end)?;
        Ok(self.out)
    }
}

fn name_len(name: &str) -> Result<u16> {
    u16::try_from(name.len()).map_err(|_| Error::internal(OPERATION, "a part name too long"))
}

/// Deflates `input` as a piece of a longer stream: primed with the `dictionary` before it,
/// ended by a sync flush on a byte boundary, with no final block.
fn deflate(level: Compression, dictionary: &[u8], input: &[u8]) -> Result<Deflated> {
    let failed = |e: flate2::CompressError| {
        Error::internal(OPERATION, "deflate refused its input").with_source(e)
    };
    let mut deflater = Compress::new(level, false);
    if !dictionary.is_empty() {
        deflater.set_dictionary(dictionary).map_err(failed)?;
    }
    let mut bytes = Vec::with_capacity(input.len() / 4 + 64);
    loop {
        let taken = usize::try_from(deflater.total_in()).unwrap_or(input.len());
        deflater
            .compress_vec(
                &input[taken.min(input.len())..],
                &mut bytes,
                FlushCompress::Sync,
            )
            .map_err(failed)?;
        // Done once every byte is in and the flush left room unused in the output.
        if deflater.total_in() == input.len() as u64 && bytes.len() < bytes.capacity() {
            break;
        }
        bytes.reserve(bytes.capacity().max(4096));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    Ok(Deflated { bytes, crc })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read as _;

    use super::ZipStream;

    /// Parts of many pieces (some shorter than the window), read back by the `zip` crate,
    /// which checks each part's CRC-32 and sizes, in the plain and the zip64 form.
    #[test]
    fn parts_in_pieces_read_back_whole() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| {
                format!(
                    "<c r=\"A{i}\"><v>{}</v></c>",
                    i.wrapping_mul(2_654_435_761) % 977
                )
                .into_bytes()
            })
            .collect();
        for zip64 in [false, true] {
            let mut zip = ZipStream::new(Vec::new(), 6);
            zip.zip64 = zip64;
            zip.start("a.xml".into()).unwrap();
            for piece in text.chunks(100_003) {
                zip.write(piece.to_vec()).unwrap();
            }
            zip.start("short.xml".into()).unwrap();
            for piece in [&b"tiny"[..], b"", b" and small", &text[..40_000], b"!"] {
                zip.write(piece.to_vec()).unwrap();
            }
            zip.start("empty.xml".into()).unwrap();
            let bytes = zip.finish().unwrap();
            assert!(
                bytes.len() < text.len() / 3,
                "it compresses: {} bytes",
                bytes.len()
            );
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
            let mut read = |name: &str| {
                let mut content = Vec::new();
                archive
                    .by_name(name)
                    .unwrap()
                    .read_to_end(&mut content)
                    .unwrap();
                content
            };
            assert!(read("a.xml") == text, "zip64: {zip64}");
            let mut short = b"tiny and small".to_vec();
            short.extend_from_slice(&text[..40_000]);
            short.push(b'!');
            assert!(read("short.xml") == short, "zip64: {zip64}");
            assert!(read("empty.xml").is_empty());
        }
    }
}
