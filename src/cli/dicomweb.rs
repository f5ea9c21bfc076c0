//! DICOMweb for `sagitta analyze`: a study, series or instance URL as an input (QIDO-RS finds
//! the instances, WADO-RS fetches them) and `--store` (STOW-RS sends the result objects back).
//!
//! Credentials come from a file (`--dicomweb-auth FILE`) or the environment
//! (`SAGITTA_DICOMWEB_TOKEN`, or `SAGITTA_DICOMWEB_USER` and `SAGITTA_DICOMWEB_PASSWORD`),
//! never from the command line, where other users of the machine could read them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(..)",
            Auth::Basic { .. } => "Auth::Basic(..)",
        })
    }
}

impl Auth {
    /// From a file: `Bearer <token>`, `Basic <user>:<password>`, or `<user>:<password>`
    /// (the first line; surrounding white space ignored).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = crate::util::read_regular_file(path, 64 << 10, "DICOMweb credentials")
            .map_err(|error| format!("--dicomweb-auth {}: {error}", path.display()))?;
        let text = String::from_utf8(text).map_err(|_| {
            format!(
                "--dicomweb-auth {}: the credentials are not UTF-8 text",
                path.display()
            )
        })?;
        let line = text.lines().next().unwrap_or("").trim();
        if let Some(token) = line.strip_prefix("Bearer ") {
            return Ok(Auth::Bearer(token.trim().to_string()));
        }
        let pair = line.strip_prefix("Basic ").unwrap_or(line).trim();
        match pair.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Auth::Basic {
                user: user.to_string(),
                password: password.to_string(),
            }),
            _ => Err(format!(
                "--dicomweb-auth {}: expected 'Bearer <token>' or '<user>:<password>' on the \
                 first line",
                path.display()
            )),
        }
    }

    /// From `SAGITTA_DICOMWEB_TOKEN`, or `SAGITTA_DICOMWEB_USER` and
    /// `SAGITTA_DICOMWEB_PASSWORD`.
    pub fn from_environment() -> Self {
        let variable = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        if let Some(token) = variable("SAGITTA_DICOMWEB_TOKEN") {
            return Auth::Bearer(token);
        }
        match (
            variable("SAGITTA_DICOMWEB_USER"),
            variable("SAGITTA_DICOMWEB_PASSWORD"),
        ) {
            (Some(user), password) => Auth::Basic {
                user,
                password: password.unwrap_or_default(),
            },
            _ => Auth::None,
        }
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes())
            )),
        }
    }
}

/// Standard base64 with padding (RFC 4648), for the Basic scheme.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether an input is a DICOMweb URL rather than a path.
pub fn is_url(input: &Path) -> bool {
    input
        .to_str()
        .is_some_and(|text| text.starts_with("http://") || text.starts_with("https://"))
}

/// A study, series or instance as a DICOMweb URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The service root, e.g. `https://pacs/dicom-web`.
    pub base: String,
    pub study: String,
    pub series: Option<String>,
    pub instance: Option<String>,
}

impl Reference {
    /// Parses `<base>/studies/<study>[/series/<series>[/instances/<instance>]]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let trimmed = url.trim_end_matches('/');
        let Some(at) = trimmed.rfind("/studies/") else {
            return Err(format!(
                "{url}: a DICOMweb input names a study: <service>/studies/<Study Instance UID>\
                 [/series/<UID>[/instances/<UID>]]"
            ));
        };
        let base = trimmed[..at].to_string();
        let parts: Vec<&str> = trimmed[at + "/studies/".len()..].split('/').collect();
        let uid = |text: &str| -> Result<String, String> {
            if !text.is_empty()
                && text.len() <= 64
                && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            {
                Ok(text.to_string())
            } else {
                Err(format!("{url}: '{text}' is not a DICOM UID"))
            }
        };
        match parts.as_slice() {
            [study] => Ok(Self {
                base,
                study: uid(study)?,
                series: None,
                instance: None,
            }),
            [study, "series", series] => Ok(Self {
                base,
                study: uid(study)?,
                series: Some(uid(series)?),
                instance: None,
            }),
            [study, "series", series, "instances", instance] => Ok(Self {
                base,
                study: uid(study)?,
                series: Some(uid(series)?),
                instance: Some(uid(instance)?),
            }),
            _ => Err(format!(
                "{url}: expected <service>/studies/<UID>[/series/<UID>[/instances/<UID>]]"
            )),
        }
    }

    fn instance_url(&self, series: &str, instance: &str) -> String {
        format!(
            "{}/studies/{}/series/{series}/instances/{instance}",
            self.base, self.study
        )
    }
}

/// An instance fetched from a DICOMweb service into a file.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: String,
    pub path: PathBuf,
}

/// A DICOMweb client.
pub struct Client {
    agent: ureq::Agent,
    auth: Auth,
}

/// The largest response read (one instance, or a search result).
const MAX_RESPONSE_BYTES: u64 = 2 << 30;

impl Client {
    pub fn new(auth: Auth) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Self { agent, auth }
    }

    fn get(&self, url: &str, accept: &str) -> Result<(String, Vec<u8>), String> {
        let mut request = self.agent.get(url).header("Accept", accept);
        if let Some(header) = self.auth.header() {
            request = request.header("Authorization", header);
        }
        let mut response = request.call().map_err(|error| format!("{url}: {error}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|error| format!("{url}: {error}"))?;
        if !status.is_success() {
            return Err(format!(
                "{url}: the server answered {status}{}",
                hint(status.as_u16())
            ));
        }
        Ok((content_type, body))
    }

    /// QIDO-RS: the (series, instance) UIDs of the instances the reference names.
    pub fn search_instances(&self, reference: &Reference) -> Result<Vec<(String, String)>, String> {
        if let (Some(series), Some(instance)) = (&reference.series, &reference.instance) {
            return Ok(vec![(series.clone(), instance.clone())]);
        }
        let url = match &reference.series {
            Some(series) => format!(
                "{}/studies/{}/series/{series}/instances",
                reference.base, reference.study
            ),
            None => format!("{}/studies/{}/instances", reference.base, reference.study),
        };
        let (_, body) = self.get(&url, "application/dicom+json")?;
        // A search without matches may answer 204 with no body.
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let found: Value = serde_json::from_slice(&body)
            .map_err(|error| format!("{url}: the search result is not DICOM JSON: {error}"))?;
        let string =
            |object: &Value, tag: &str| object[tag]["Value"][0].as_str().map(str::to_string);
        let mut instances = Vec::new();
        for object in found.as_array().into_iter().flatten() {
            let series = string(object, "0020000E").or_else(|| reference.series.clone());
            if let (Some(series), Some(instance)) = (series, string(object, "00080018")) {
                instances.push((series, instance));
            }
        }
        Ok(instances)
    }

    /// WADO-RS: fetches each instance the reference names into `folder` as
    /// `<SOP Instance UID>.dcm`, in the original transfer syntax.
    pub fn fetch(&self, reference: &Reference, folder: &Path) -> Result<Vec<Fetched>, String> {
        let mut fetched = Vec::new();
        for (series, instance) in self.search_instances(reference)? {
            let url = reference.instance_url(&series, &instance);
            let (content_type, body) = self.get(
                &url,
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
            )?;
            let parts = multipart_parts(&content_type, &body)
                .ok_or_else(|| format!("{url}: the answer is not multipart/related"))?;
            let Some(part) = parts.into_iter().next() else {
                return Err(format!("{url}: the answer holds no instance"));
            };
            let path = folder.join(format!("{instance}.dcm"));
            std::fs::write(&path, part)
                .map_err(|error| format!("{}: cannot write: {error}", path.display()))?;
            fetched.push(Fetched { url, path });
        }
        Ok(fetched)
    }

    /// STOW-RS: sends DICOM files to `<base>/studies`; an error names what the server refused.
    pub fn store(&self, base: &str, files: &[&Path]) -> Result<(), String> {
        let url = format!("{}/studies", base.trim_end_matches('/'));
        let boundary = format!("sagitta-{}", crate::report::dicom::new_uid());
        let mut body = Vec::new();
        for file in files {
            let bytes = std::fs::read(file)
                .map_err(|error| format!("{}: cannot read: {error}", file.display()))?;
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut request = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .header("Accept", "application/dicom+json");
        if let Some(header) = self.auth.header() {
            request = request.header("Authorization", header);
        }
        let mut response = request
            .send(&body[..])
            .map_err(|error| format!("{url}: {error}"))?;
        let status = response.status();
        let answer = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "{url}: the server answered {status}{}",
                hint(status.as_u16())
            ));
        }
        // 200 may still list refused instances (Failed SOP Sequence, 0008,1198).
        if let Ok(json) = serde_json::from_slice::<Value>(&answer) {
            if let Some(failed) = json["00081198"]["Value"]
                .as_array()
                .filter(|f| !f.is_empty())
            {
                return Err(format!(
                    "{url}: the server refused {} of {} object(s)",
                    failed.len(),
                    files.len()
                ));
            }
        }
        Ok(())
    }
}

fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            " (give credentials with --dicomweb-auth FILE, or SAGITTA_DICOMWEB_TOKEN, or \
             SAGITTA_DICOMWEB_USER and SAGITTA_DICOMWEB_PASSWORD)"
        }
        404 => " (check the service root and the UIDs)",
        _ => "",
    }
}

/// The bodies of a `multipart/related` message; `None` without a boundary.
pub fn multipart_parts(content_type: &str, body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let boundary = content_type.split(';').find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        (key.trim().eq_ignore_ascii_case("boundary")).then(|| value.trim().trim_matches('"'))
    })?;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let find = |haystack: &[u8], from: usize, needle: &[u8]| {
        haystack
            .get(from..)?
            .windows(needle.len())
            .position(|window| window == needle)
            .map(|at| at + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, 0, delimiter)? + delimiter.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            break;
        }
        let headers_end = find(body, at, b"\r\n\r\n")? + 4;
        let next = find(body, headers_end, delimiter)?;
        // The CRLF before a delimiter belongs to the delimiter.
        let end = if next >= 2 && &body[next - 2..next] == b"\r\n" {
            next - 2
        } else {
            next
        };
        parts.push(body[headers_end..end.max(headers_end)].to_vec());
        at = next + delimiter.len();
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn references_parse_studies_series_and_instances() {
        let study = Reference::parse("http://h:8042/dicom-web/studies/1.2.3/").unwrap();
        assert_eq!(study.base, "http://h:8042/dicom-web");
        assert_eq!(study.study, "1.2.3");
        assert_eq!(study.series, None);
        let instance =
            Reference::parse("https://p/wado/studies/1.2/series/3.4/instances/5.6").unwrap();
        assert_eq!(instance.series.as_deref(), Some("3.4"));
        assert_eq!(instance.instance.as_deref(), Some("5.6"));
        assert!(Reference::parse("http://h/dicom-web/1.2.3").is_err());
        assert!(Reference::parse("http://h/studies/1.2/frames/1").is_err());
        assert!(Reference::parse("http://h/studies/abc").is_err());
    }

    #[test]
    fn multipart_bodies_are_split_on_the_boundary() {
        let body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b1\r\n\r\nsecond\r\n--b1--\r\n";
        let parts = multipart_parts(
            "multipart/related; type=\"application/dicom\"; boundary=\"b1\"",
            body,
        )
        .unwrap();
        assert_eq!(parts, vec![b"DICM".to_vec(), b"second".to_vec()]);
        assert!(multipart_parts("application/dicom", body).is_none());
    }

    #[test]
    fn credentials_files_take_bearer_tokens_and_user_password_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth");
        std::fs::write(&file, "Bearer abc.def\n").unwrap();
        assert_eq!(
            Auth::from_file(&file).unwrap(),
            Auth::Bearer("abc.def".into())
        );
        std::fs::write(&file, "alice:s3:cret\n").unwrap();
        assert_eq!(
            Auth::from_file(&file).unwrap(),
            Auth::Basic {
                user: "alice".into(),
                password: "s3:cret".into()
            }
        );
        assert_eq!(
            Auth::Basic {
                user: "Aladdin".into(),
                password: "open sesame".into()
            }
            .header()
            .unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        std::fs::write(&file, "just-a-word\n").unwrap();
        assert!(Auth::from_file(&file).is_err());
        assert!(!format!("{:?}", Auth::Bearer("secret".into())).contains("secret"));
    }
}
