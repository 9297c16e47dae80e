//! `FILE|DIR` arguments to policy files, the way the agent reads its policy
//! directory: a directory stands for its `*.yaml` and `*.yml` files in name
//! order (not recursive); a file is read whatever its name.

use std::path::{Path, PathBuf};

use weir_policy::{PolicyError, PolicySet};

/// Whether a path names a YAML file by its extension.
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// The files the arguments stand for, in argument order. A path that cannot
/// be read is an error naming it.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PolicyError::Io { path, source }
    };
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut in_dir = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            let file = entry.map_err(io(path))?.path();
            if is_yaml(&file) && file.is_file() {
                in_dir.push(file);
            }
        }
        in_dir.sort();
        files.extend(in_dir);
    }
    Ok(files)
}

/// Reads and parses the policies the arguments stand for, as one set.
pub fn load(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, PolicySet), PolicyError> {
    let files = collect(paths)?;
    let set = PolicySet::load_files(&files)?;
    Ok((files, set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_stand_for_their_yaml_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", "notes.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let extra = dir.path().join("notes.txt");
        let got = collect(&[dir.path().to_path_buf(), extra.clone()]).unwrap();
        assert_eq!(
            got,
            vec![dir.path().join("a.yml"), dir.path().join("b.yaml"), extra]
        );
        let missing = dir.path().join("missing");
        let err = collect(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}
