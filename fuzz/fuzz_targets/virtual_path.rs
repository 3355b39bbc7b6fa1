//! Path arguments (CWD, RETR, STOR, …) through `VirtualPath::resolve`, as a
//! session sends them one after another.
//!
//! Input: up to eight path arguments separated by 0xFF, a byte UTF-8 text
//! never holds (and `Command::parse` only lets UTF-8 through). Each resolves
//! against the working directory the previous ones left, as CWD would (more
//! arguments would only make each run slower: every one copies the path). The invariant is
//! confinement: whatever the arguments, the resolved path joined under a home
//! directory on disk stays inside it, and its names are plain names.

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use wharf_ftp::path::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
use wharf_ftp::{PathError, VirtualPath};

const HOME: &str = "/srv/ftp/alice";

fuzz_target!(|data: &[u8]| {
    let mut cwd = VirtualPath::root();
    for argument in data.split(|&b| b == 0xFF).take(8) {
        let Ok(argument) = std::str::from_utf8(argument) else {
            continue;
        };
        match cwd.resolve(argument) {
            Ok(resolved) => {
                check_confined(&resolved);
                check_canonical(&cwd, argument, &resolved);
                check_join(&resolved, argument);
                cwd = resolved;
            }
            Err(PathError::AboveRoot) => assert!(
                argument.split('/').any(|part| part == ".."),
                "{argument:?} went above the root without `..`"
            ),
            Err(PathError::NulByte) => assert!(argument.contains('\0')),
            Err(_) => {}
        }
    }
});

/// Joined under the home directory the way storage does, the path names
/// only entries below it.
fn check_confined(path: &VirtualPath) {
    let relative = path.to_relative_path();
    assert!(
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{relative:?} has a non-plain component"
    );
    let on_disk = Path::new(HOME).join(&relative);
    assert!(on_disk.starts_with(HOME), "{on_disk:?} left {HOME}");
    assert_eq!(
        on_disk.components().count(),
        Path::new(HOME).components().count() + path.components().len(),
        "{path:?} does not map one name to one directory level"
    );
    for name in path.components() {
        assert!(!name.is_empty() && name != "." && name != "..", "{path:?}");
        assert!(!name.contains('/') && !name.contains('\0'), "{path:?}");
        assert!(name.len() <= MAX_COMPONENT_BYTES, "{path:?}");
    }
    assert!(path.as_string().len() <= MAX_PATH_BYTES);
}

/// The client-visible form is canonical: it resolves to the same path from
/// any working directory, and a relative argument without `..` stays below
/// the working directory.
fn check_canonical(cwd: &VirtualPath, argument: &str, resolved: &VirtualPath) {
    let shown = resolved.as_string();
    assert_eq!(VirtualPath::root().resolve(&shown).as_ref(), Ok(resolved));
    assert_eq!(cwd.resolve(&shown).as_ref(), Ok(resolved));
    if !argument.starts_with('/') && !argument.split('/').any(|part| part == "..") {
        assert!(resolved.starts_with(cwd), "{argument:?} left {cwd}");
    }
}

/// `join` takes exactly one plain name; parent and name give the path back.
fn check_join(path: &VirtualPath, argument: &str) {
    if let Ok(joined) = path.join(argument) {
        assert_eq!(joined.parent().as_ref(), Some(path));
        assert_eq!(joined.file_name(), Some(argument));
    }
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        assert_eq!(parent.join(name).as_ref(), Ok(path));
    }
}
