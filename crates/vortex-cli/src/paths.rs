//! Checks on the paths a command writes, made before anything is opened or read.

use std::path::Path;

use anyhow::{bail, Result};

/// Whether two paths name the same existing file (through links, or two spellings).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Refuses a run whose outputs (`(what, path)`: the output, a dead-letter file) would destroy
/// its input or each other, or whose output is a folder: writing starts by truncating or
/// replacing, and the input would be lost before it was read. `-` (stdin or stdout) is no
/// file.
pub(crate) fn check_outputs(input: &Path, outputs: &[(&str, &Path)]) -> Result<()> {
    let stdio = |path: &Path| path.as_os_str() == "-";
    for (i, (what, path)) in outputs.iter().enumerate() {
        if stdio(path) {
            continue;
        }
        if path.is_dir() {
            bail!("the {what} {} is a directory, not a file", path.display());
        }
        if !stdio(input) && (same_file(input, path) || input == *path) {
            bail!(
                "the {what} {} is the input file: writing it would destroy the input",
                path.display()
            );
        }
        for (other, other_path) in &outputs[i + 1..] {
            if !stdio(other_path) && (same_file(path, other_path) || path == other_path) {
                bail!(
                    "the {what} and the {other} are the same file ({})",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_would_destroy_the_input_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "a\n1\n").unwrap();
        let link = dir.path().join("link.csv");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let out = dir.path().join("out.csv");
        let dead = dir.path().join("dead.jsonl");

        assert!(check_outputs(&input, &[("output", &out), ("dead-letter file", &dead)]).is_ok());
        let err = check_outputs(&input, &[("output", &input)]).unwrap_err();
        assert!(err.to_string().contains("is the input file"), "{err}");
        #[cfg(unix)]
        assert!(check_outputs(&input, &[("dead-letter file", &link)]).is_err());
        let err =
            check_outputs(&input, &[("output", &out), ("dead-letter file", &out)]).unwrap_err();
        assert!(err.to_string().contains("are the same file"), "{err}");
        let err = check_outputs(&input, &[("output", dir.path())]).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert!(check_outputs(Path::new("-"), &[("output", Path::new("-"))]).is_ok());
    }
}
