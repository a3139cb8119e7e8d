use std::io::{BufRead, Write};
use std::path::Path;

/// The compression of an [`Input`](crate::io::Input) or [`Output`](crate::io::Output).
///
/// [`Auto`](Compression::Auto) (the default) goes by the path's extension (`.gz`, `.zst`) and,
/// for inputs, by the first bytes of the data (gzip and zstd magic numbers), so a compressed
/// stream from stdin or an upload is read as it is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Decide from the extension, then (inputs only) the magic bytes; plain otherwise.
    #[default]
    Auto,
    /// No compression.
    None,
    /// gzip (RFC 1952); inputs may be several concatenated members.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The compression a path's extension names, if any.
    pub(crate) fn from_extension(path: &Path) -> Option<Compression> {
        match path.extension()?.to_str()? {
            "gz" | "gzip" => Some(Compression::Gzip),
            "zst" | "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The compression the first bytes of a stream show.
    pub(crate) fn from_magic(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// Wraps a reader to decompress it; `Auto` has been resolved before.
    pub(crate) fn decoder(
        self,
        reader: Box<dyn BufRead + Send>,
    ) -> std::io::Result<Box<dyn BufRead + Send>> {
        match self {
            Compression::Auto | Compression::None => Ok(reader),
            Compression::Gzip => gzip_decoder(reader),
            Compression::Zstd => zstd_decoder(reader),
        }
    }

    /// Wraps a writer to compress into it; `Auto` has been resolved before.
    pub(crate) fn encoder(
        self,
        writer: Box<dyn Write + Send>,
    ) -> std::io::Result<Box<dyn FinishWrite>> {
        match self {
            Compression::Auto | Compression::None => Ok(Box::new(Plain(writer))),
            Compression::Gzip => gzip_encoder(writer),
            Compression::Zstd => zstd_encoder(writer),
        }
    }
}

/// A writer that must be finished (a compressor's trailer written) before it is complete.
pub(crate) trait FinishWrite: Write + Send {
    /// Writes any trailer and flushes.
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

struct Plain(Box<dyn Write + Send>);

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl FinishWrite for Plain {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(not(all(feature = "gzip", feature = "zstd")))]
fn disabled(name: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("{name} support is not compiled in: enable the `{name}` feature of vortex-stream"),
    )
}

#[cfg(feature = "gzip")]
fn gzip_decoder(reader: Box<dyn BufRead + Send>) -> std::io::Result<Box<dyn BufRead + Send>> {
    Ok(Box::new(std::io::BufReader::with_capacity(
        64 * 1024,
        flate2::bufread::MultiGzDecoder::new(reader),
    )))
}

#[cfg(not(feature = "gzip"))]
fn gzip_decoder(_: Box<dyn BufRead + Send>) -> std::io::Result<Box<dyn BufRead + Send>> {
    Err(disabled("gzip"))
}

#[cfg(feature = "gzip")]
fn gzip_encoder(writer: Box<dyn Write + Send>) -> std::io::Result<Box<dyn FinishWrite>> {
    struct Gzip(flate2::write::GzEncoder<Box<dyn Write + Send>>);
    impl Write for Gzip {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    impl FinishWrite for Gzip {
        fn finish(self: Box<Self>) -> std::io::Result<()> {
            self.0.finish()?.flush()
        }
    }
    Ok(Box::new(Gzip(flate2::write::GzEncoder::new(
        writer,
        flate2::Compression::fast(),
    ))))
}

#[cfg(not(feature = "gzip"))]
fn gzip_encoder(_: Box<dyn Write + Send>) -> std::io::Result<Box<dyn FinishWrite>> {
    Err(disabled("gzip"))
}

#[cfg(feature = "zstd")]
fn zstd_decoder(reader: Box<dyn BufRead + Send>) -> std::io::Result<Box<dyn BufRead + Send>> {
    Ok(Box::new(std::io::BufReader::with_capacity(
        64 * 1024,
        zstd::stream::read::Decoder::with_buffer(reader)?,
    )))
}

#[cfg(not(feature = "zstd"))]
fn zstd_decoder(_: Box<dyn BufRead + Send>) -> std::io::Result<Box<dyn BufRead + Send>> {
    Err(disabled("zstd"))
}

#[cfg(feature = "zstd")]
fn zstd_encoder(writer: Box<dyn Write + Send>) -> std::io::Result<Box<dyn FinishWrite>> {
    struct Zstd(zstd::stream::write::Encoder<'static, Box<dyn Write + Send>>);
    impl Write for Zstd {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    impl FinishWrite for Zstd {
        fn finish(self: Box<Self>) -> std::io::Result<()> {
            self.0.finish()?.flush()
        }
    }
    Ok(Box::new(Zstd(zstd::stream::write::Encoder::new(
        writer, 3,
    )?)))
}

#[cfg(not(feature = "zstd"))]
fn zstd_encoder(_: Box<dyn Write + Send>) -> std::io::Result<Box<dyn FinishWrite>> {
    Err(disabled("zstd"))
}
