//! The user's view of the file system: absolute, normalised paths rooted at
//! the user's home directory.
//!
//! Normalisation happens purely on strings, before anything touches the
//! disk, so `..` can never climb above the root whatever the client sends:
//! a path that tries is refused (`PathError::AboveRoot`, a `550` for the
//! client) rather than silently clamped, so the attempt is visible. The server maps a `VirtualPath` onto its storage by
//! joining [`VirtualPath::components`] under the user's home; it must still
//! guard against symlinks pointing outside, which no string rule can see.

use std::fmt;
use std::path::PathBuf;

/// Longest accepted path, in bytes of its `/a/b` form (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted single name, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a path argument was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    NulByte,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("a path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("invalid file name")]
    InvalidName,
    #[error("path leads above the home directory")]
    AboveRoot,
}

/// An absolute, normalised path. Components are never empty, `.` or `..`
/// and never contain `/` or NUL. Backslash is an ordinary character.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct VirtualPath {
    components: Vec<String>,
}

impl VirtualPath {
    /// The user's home directory, shown to the client as `/`.
    pub fn root() -> VirtualPath {
        VirtualPath::default()
    }

    /// Resolves a client-supplied path against `self` (the working
    /// directory). Absolute arguments start from the root; `.` is skipped,
    /// `..` pops, and popping past the root is an error; repeated `/` collapse. An empty
    /// argument yields `self`. Names made only of spaces, or like `....` or
    /// `%2e%2e`, are ordinary names.
    pub fn resolve(&self, arg: &str) -> Result<VirtualPath, PathError> {
        if arg.contains('\0') {
            return Err(PathError::NulByte);
        }
        if arg.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        let mut components = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.components.clone()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if components.pop().is_none() {
                        return Err(PathError::AboveRoot);
                    }
                }
                name => {
                    if name.len() > MAX_COMPONENT_BYTES {
                        return Err(PathError::ComponentTooLong);
                    }
                    components.push(name.to_owned());
                }
            }
        }
        VirtualPath { components }.checked_length()
    }

    /// The path's names from the root down; empty for the root.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The containing directory; `None` for the root.
    pub fn parent(&self) -> Option<VirtualPath> {
        let (_, rest) = self.components.split_last()?;
        Some(VirtualPath {
            components: rest.to_vec(),
        })
    }

    /// The last name; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// Appends one name, e.g. an entry read from a directory. Unlike
    /// [`resolve`](Self::resolve) this refuses anything that is not a single
    /// plain name, so a hostile directory entry cannot move the path.
    pub fn join(&self, name: &str) -> Result<VirtualPath, PathError> {
        if name.contains('\0') {
            return Err(PathError::NulByte);
        }
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(PathError::InvalidName);
        }
        if name.len() > MAX_COMPONENT_BYTES {
            return Err(PathError::ComponentTooLong);
        }
        let mut components = self.components.clone();
        components.push(name.to_owned());
        VirtualPath { components }.checked_length()
    }

    /// The client-visible form: `/` or `/a/b`.
    pub fn as_string(&self) -> String {
        if self.is_root() {
            return "/".to_owned();
        }
        let mut out = String::new();
        for component in &self.components {
            out.push('/');
            out.push_str(component);
        }
        out
    }

    /// Whether `other` is this path or one of its ancestors, compared by
    /// whole components (`/ab` does not start with `/a`).
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        self.components.starts_with(&other.components)
    }

    /// The path relative to the user's home, for joining onto it on disk.
    /// The root yields an empty path.
    pub fn to_relative_path(&self) -> PathBuf {
        self.components.iter().collect()
    }

    fn byte_len(&self) -> usize {
        self.components
            .iter()
            .map(|c| c.len() + 1)
            .sum::<usize>()
            .max(1)
    }

    fn checked_length(self) -> Result<VirtualPath, PathError> {
        if self.byte_len() > MAX_PATH_BYTES {
            Err(PathError::TooLong)
        } else {
            Ok(self)
        }
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &str) -> VirtualPath {
        VirtualPath::root().resolve(path).unwrap()
    }

    #[test]
    fn root_displays_as_slash() {
        assert_eq!(VirtualPath::root().as_string(), "/");
        assert_eq!(VirtualPath::root().to_string(), "/");
        assert!(VirtualPath::root().is_root());
        assert!(VirtualPath::root().components().is_empty());
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let cwd = at("/home/docs");
        assert_eq!(
            cwd.resolve("a/b.txt").unwrap().as_string(),
            "/home/docs/a/b.txt"
        );
        assert_eq!(cwd.resolve("/x").unwrap().as_string(), "/x");
    }

    #[test]
    fn empty_argument_is_the_working_directory() {
        let cwd = at("/a/b");
        assert_eq!(cwd.resolve("").unwrap(), cwd);
    }

    #[test]
    fn dots_and_repeated_slashes_are_normalised() {
        assert_eq!(at("//a///./b/./").as_string(), "/a/b");
        assert_eq!(at("/a/b/../c").as_string(), "/a/c");
        assert_eq!(at("/a/b/..").as_string(), "/a");
    }

    #[test]
    fn parent_traversal_above_root_is_refused() {
        let root = VirtualPath::root();
        assert_eq!(root.resolve("../../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(root.resolve("/../.."), Err(PathError::AboveRoot));
        assert_eq!(root.resolve(".."), Err(PathError::AboveRoot));
        let cwd = at("/x");
        assert_eq!(cwd.resolve("a/../../b").unwrap().as_string(), "/b");
        assert_eq!(cwd.resolve("..").unwrap(), VirtualPath::root());
        assert_eq!(cwd.resolve("../../../../.."), Err(PathError::AboveRoot));
        assert_eq!(cwd.resolve("/x/../../y"), Err(PathError::AboveRoot));
    }

    #[test]
    fn look_alike_dot_names_are_ordinary_names() {
        assert_eq!(at("....//").components(), ["...."]);
        assert_eq!(at("%2e%2e/x").components(), ["%2e%2e", "x"]);
        assert_eq!(at("...").components(), ["..."]);
    }

    #[test]
    fn backslash_is_an_ordinary_character() {
        assert_eq!(at("..\\..\\etc").components(), ["..\\..\\etc"]);
    }

    #[test]
    fn names_with_spaces_are_kept_verbatim() {
        assert_eq!(at("/ /my file .txt").components(), [" ", "my file .txt"]);
    }

    #[test]
    fn nul_byte_is_rejected() {
        assert_eq!(VirtualPath::root().resolve("a\0b"), Err(PathError::NulByte));
        assert_eq!(VirtualPath::root().join("a\0"), Err(PathError::NulByte));
    }

    #[test]
    fn over_long_path_is_rejected() {
        let arg = "a/".repeat(2500);
        assert_eq!(arg.len(), 5000);
        assert_eq!(VirtualPath::root().resolve(&arg), Err(PathError::TooLong));
    }

    #[test]
    fn path_growing_past_the_limit_through_the_cwd_is_rejected() {
        let cwd = at(&"/abcdefghi".repeat(400)); // 4000 bytes
        assert_eq!(cwd.as_string().len(), 4000);
        assert_eq!(cwd.resolve(&"x".repeat(100)), Err(PathError::TooLong));
        assert_eq!(cwd.join(&"x".repeat(100)), Err(PathError::TooLong));
        assert!(cwd.resolve(&"x".repeat(95)).is_ok());
    }

    #[test]
    fn over_long_component_is_rejected() {
        let name = "n".repeat(300);
        assert_eq!(
            VirtualPath::root().resolve(&format!("/a/{name}")),
            Err(PathError::ComponentTooLong)
        );
        assert_eq!(
            VirtualPath::root().join(&name),
            Err(PathError::ComponentTooLong)
        );
        assert!(VirtualPath::root().resolve(&"n".repeat(255)).is_ok());
    }

    #[test]
    fn join_accepts_only_a_single_plain_name() {
        let dir = at("/d");
        assert_eq!(dir.join("f.txt").unwrap().as_string(), "/d/f.txt");
        for bad in ["", ".", "..", "/", "a/b", "/etc"] {
            assert_eq!(dir.join(bad), Err(PathError::InvalidName), "{bad:?}");
        }
        assert_eq!(dir.join("...").unwrap().as_string(), "/d/...");
    }

    #[test]
    fn parent_and_file_name() {
        let p = at("/a/b/c.txt");
        assert_eq!(p.file_name(), Some("c.txt"));
        assert_eq!(p.parent().unwrap().as_string(), "/a/b");
        assert_eq!(VirtualPath::root().parent(), None);
        assert_eq!(VirtualPath::root().file_name(), None);
        assert_eq!(at("/a").parent(), Some(VirtualPath::root()));
    }

    #[test]
    fn starts_with_compares_whole_components() {
        assert!(at("/a/b").starts_with(&at("/a")));
        assert!(at("/a").starts_with(&at("/a")));
        assert!(at("/a").starts_with(&VirtualPath::root()));
        assert!(!at("/ab").starts_with(&at("/a")));
        assert!(!at("/a").starts_with(&at("/a/b")));
    }

    #[test]
    fn relative_path_joins_components() {
        assert_eq!(at("/a/b").to_relative_path(), PathBuf::from("a/b"));
        assert_eq!(VirtualPath::root().to_relative_path(), PathBuf::new());
    }
}
