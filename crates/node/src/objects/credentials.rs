//! S3 credentials: the AWS shared-credentials file given with
//! `--s3-credentials-file`, else the usual environment variables, read by
//! name. Not object_store's `from_env`, which would also take an endpoint or
//! bucket from the environment behind the settings' back.

use std::fmt;
use std::path::Path;

use super::ObjectsError;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    /// Where they came from, for error messages.
    pub source: String,
}

impl Credentials {
    /// The end of the access key, enough to tell keys apart in a message.
    pub fn hint(&self) -> String {
        let tail: String = self
            .access_key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("access key …{tail} from {}", self.source)
    }
}

// Never print a secret, not even in a debug log.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({})", self.hint())
    }
}

/// The credentials of `file`, else of the environment (`env` looks a
/// variable up: the process environment, or a test's).
pub fn load(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, ObjectsError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ObjectsError::Credentials {
            from: path.display().to_string(),
            why: e.to_string(),
        })?;
        return from_file(&text, &path.display().to_string());
    }
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key), Some(secret_key)) => Ok(Credentials {
            access_key,
            secret_key,
            session_token: var("AWS_SESSION_TOKEN"),
            source: "AWS_ACCESS_KEY_ID".into(),
        }),
        _ => Err(ObjectsError::NoCredentials),
    }
}

/// The `[default]` profile of a shared-credentials file, or its only one.
fn from_file(text: &str, source: &str) -> Result<Credentials, ObjectsError> {
    let mut profiles: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            profiles.push((name.trim().to_owned(), Vec::new()));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ObjectsError::Credentials {
                from: source.into(),
                why: "a line is neither [profile] nor key = value".into(),
            });
        };
        let Some((_, entries)) = profiles.last_mut() else {
            return Err(ObjectsError::Credentials {
                from: source.into(),
                why: "a key before the first [profile]".into(),
            });
        };
        entries.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let default = profiles.iter().find(|(name, _)| name == "default");
    let profile = match (default, profiles.as_slice()) {
        (Some(p), _) | (None, [p]) => p,
        (None, _) => {
            return Err(ObjectsError::Credentials {
                from: source.into(),
                why: "no [default] profile".into(),
            })
        }
    };
    let get = |key: &str| {
        profile
            .1
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let missing = |key: &str| ObjectsError::Credentials {
        from: source.into(),
        why: format!("profile [{}] has no {key}", profile.0),
    };
    Ok(Credentials {
        access_key: get("aws_access_key_id").ok_or_else(|| missing("aws_access_key_id"))?,
        secret_key: get("aws_secret_access_key").ok_or_else(|| missing("aws_secret_access_key"))?,
        session_token: get("aws_session_token"),
        source: source.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_shared_credentials_file_gives_its_default_profile() {
        let text = "# keys\n[other]\naws_access_key_id = OTHER\naws_secret_access_key = x\n\n\
                    [default]\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE1234\naws_secret_access_key = s3cr3t\n";
        let c = from_file(text, "creds").unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.secret_key.as_str()),
            ("AKIAEXAMPLE1234", "s3cr3t")
        );
        assert_eq!(c.session_token, None);
        assert_eq!(c.hint(), "access key …1234 from creds");
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let only = from_file(
            "[ceph]\naws_access_key_id=a\naws_secret_access_key=b\n",
            "f",
        );
        assert_eq!(only.unwrap().access_key, "a");
    }

    #[test]
    fn incomplete_credentials_are_refused_with_a_reason() {
        let cases = [
            (
                "[default]\naws_access_key_id = a\n",
                "no aws_secret_access_key",
            ),
            ("aws_access_key_id = a\n", "before the first [profile]"),
            ("[default]\njunk\n", "neither"),
            ("[a]\n[b]\n", "no [default] profile"),
        ];
        for (text, why) in cases {
            let error = from_file(text, "f").unwrap_err().to_string();
            assert!(error.contains(why), "{text:?}: {error}");
        }
        assert!(matches!(
            load(None, no_env),
            Err(ObjectsError::NoCredentials)
        ));
    }

    #[test]
    fn the_environment_is_read_by_name() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AK".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("SK".to_owned()),
            "AWS_SESSION_TOKEN" => Some("T".to_owned()),
            _ => None,
        };
        let c = load(None, env).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("T"));
        assert_eq!(c.source, "AWS_ACCESS_KEY_ID");
    }
}
