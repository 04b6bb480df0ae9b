//! `WWW-Authenticate` challenges (RFC 7235 §4.1, grammar in §2.1 and RFC 7230 §3.2.6).
//!
//! Hand-written rather than taken from a crate: the grammar is small (tokens, quoted strings
//! with `\` escapes, commas that separate both parameters and challenges), the crates that
//! parse it either follow only the common cases (and split quoted commas) or pull in a whole
//! HTTP framework, and walking the header by hand lets an error say where it broke.
//!
//! ```text
//! WWW-Authenticate = 1#challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```

/// The longest header value parsed; a registry sending more is broken or hostile.
pub const CHALLENGE_HEADER_LIMIT: usize = 16 * 1024;

/// One challenge: a scheme and its parameters, e.g.
/// `Bearer realm="https://auth.example/token",service="registry.example"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent (`Bearer`, `Basic`…); compare with [`Challenge::is`].
    pub scheme: String,
    /// Parameters in order, names lower-cased (they are case-insensitive), values unquoted.
    pub params: Vec<(String, String)>,
    /// The `token68` form some schemes use instead of parameters.
    pub token68: Option<String>,
}

impl Challenge {
    /// Whether this challenge is of `scheme` (case-insensitive).
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of parameter `name` (case-insensitive); the first when repeated.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of parameter `name`, for `scope`, which some registries repeat.
    pub fn params_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a `WWW-Authenticate` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse WWW-Authenticate at byte {position}: {reason}")]
pub struct ChallengeError {
    /// Byte offset of the problem in the header value.
    pub position: usize,
    /// What was expected.
    pub reason: &'static str,
}

/// Parses a `WWW-Authenticate` header value into its challenges, in order.
///
/// ```
/// let c = ocisdk::auth::parse_challenges(
///     r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull""#,
/// ).unwrap();
/// assert!(c[0].is("bearer"));
/// assert_eq!(c[0].param("service"), Some("reg"));
/// ```
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge>, ChallengeError> {
    if value.len() > CHALLENGE_HEADER_LIMIT {
        return Err(ChallengeError {
            position: CHALLENGE_HEADER_LIMIT,
            reason: "header longer than the limit",
        });
    }
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_list_separators();
        if p.at_end() {
            break;
        }
        let scheme = p
            .token()
            .ok_or_else(|| p.error("expected an auth scheme"))?;
        let mut challenge = Challenge {
            scheme: scheme.to_string(),
            params: Vec::new(),
            token68: None,
        };
        let had_space = p.skip_ws();
        if had_space && !p.at_end() && p.peek() != Some(b',') {
            match p.param_ahead() {
                Some(_) => p.params(&mut challenge)?,
                None => challenge.token68 = Some(p.token68()?),
            }
        } else if !p.at_end() && p.peek() != Some(b',') {
            return Err(p.error("expected a space after the auth scheme"));
        }
        out.push(challenge);
    }
    if out.is_empty() {
        return Err(ChallengeError {
            position: 0,
            reason: "no challenge in the header",
        });
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// `tchar` of RFC 7230 §3.2.6.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl<'a> Parser<'a> {
    fn error(&self, reason: &'static str) -> ChallengeError {
        ChallengeError {
            position: self.i,
            reason,
        }
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips spaces and tabs; whether there were any.
    fn skip_ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    /// Skips whitespace and empty list elements (`a, , b` is allowed by RFC 7230 §7).
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).unwrap_or(""))
    }

    /// Whether an `auth-param` (`name BWS = BWS value`) starts here, without consuming it;
    /// returns the name's end. A `name=` followed by nothing (or a comma) is a token68 with
    /// padding instead.
    fn param_ahead(&self) -> Option<usize> {
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == self.i {
            return None;
        }
        let name_end = j;
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if self.s.get(j) != Some(&b'=') {
            return None;
        }
        j += 1;
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        match self.s.get(j) {
            Some(b'"') => Some(name_end),
            Some(&b) if is_tchar(b) => Some(name_end),
            _ => None,
        }
    }

    fn params(&mut self, challenge: &mut Challenge) -> Result<(), ChallengeError> {
        loop {
            let name = self
                .token()
                .ok_or_else(|| self.error("expected a parameter name"))?
                .to_ascii_lowercase();
            self.skip_ws();
            if self.peek() != Some(b'=') {
                return Err(self.error("expected \"=\" after a parameter name"));
            }
            self.i += 1;
            self.skip_ws();
            let value = if self.peek() == Some(b'"') {
                self.quoted()?
            } else {
                self.token()
                    .ok_or_else(|| self.error("expected a token or a quoted string"))?
                    .to_string()
            };
            challenge.params.push((name, value));
            self.skip_ws();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {}
                Some(_) => return Err(self.error("expected \",\" between parameters")),
            }
            // After the comma: another parameter of this challenge, or the next challenge.
            let save = self.i;
            self.skip_list_separators();
            if self.at_end() {
                return Ok(());
            }
            if self.param_ahead().is_none() {
                self.i = save;
                return Ok(());
            }
        }
    }

    /// A quoted string with `\` escapes (quoted-pair), the quotes removed.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let start = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    self.i = start;
                    return Err(self.error("unterminated quoted string"));
                }
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(b) = self.peek() else {
                        return Err(self.error("escape at the end of the header"));
                    };
                    out.push(b);
                    self.i += 1;
                }
                Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                    out.push(b);
                    self.i += 1;
                }
                Some(_) => return Err(self.error("control character in a quoted string")),
            }
        }
        String::from_utf8(out).map_err(|_| ChallengeError {
            position: start,
            reason: "quoted string is not UTF-8",
        })
    }

    fn token68(&mut self) -> Result<String, ChallengeError> {
        let start = self.i;
        while self.peek().is_some_and(is_token68_char) {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.error("expected parameters or a token68"));
        }
        while self.peek() == Some(b'=') {
            self.i += 1;
        }
        let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.skip_ws();
        match self.peek() {
            None | Some(b',') => Ok(text),
            Some(_) => Err(self.error("unexpected character after a token68")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Challenge {
        let mut all = parse_challenges(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(all.len(), 1, "{value:?}: {all:?}");
        all.remove(0)
    }

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn parses_registry_bearer_challenges() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        );
        assert!(c.is("bearer") && c.is("BEARER"));
        assert_eq!(
            params(&c),
            [
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io"),
                ("scope", "repository:library/ubuntu:pull"),
            ]
        );
        // distribution's insufficient_scope answer, with spaces after commas.
        let c = one(
            r#"Bearer realm="http://127.0.0.1:1/token", service="svc", scope="repository:a:pull,push", error="insufficient_scope""#,
        );
        assert_eq!(c.param("scope"), Some("repository:a:pull,push"));
        assert_eq!(c.param("ERROR"), Some("insufficient_scope"));
    }

    #[test]
    fn scheme_and_names_are_case_insensitive_values_are_not() {
        let c = one(r#"bAsIc REALM="Registry Realm""#);
        assert!(c.is("Basic"));
        assert_eq!(c.params, [("realm".into(), "Registry Realm".into())]);
    }

    #[test]
    fn quoted_strings_keep_commas_and_unescape() {
        let c = one(r#"Bearer realm="https://a/t?x=1,2",scope="a b",note="say \"hi\" \\ ok""#);
        assert_eq!(c.param("realm"), Some("https://a/t?x=1,2"));
        assert_eq!(c.param("scope"), Some("a b"));
        assert_eq!(c.param("note"), Some(r#"say "hi" \ ok"#));
    }

    #[test]
    fn several_challenges_in_one_header() {
        let all = parse_challenges(
            r#"Basic realm="r1", Bearer realm="https://x/t",service=s, Negotiate abc==, NTLM"#,
        )
        .unwrap();
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "Negotiate", "NTLM"]);
        assert_eq!(all[1].param("service"), Some("s"));
        assert_eq!(all[2].token68.as_deref(), Some("abc=="));
        assert!(all[3].params.is_empty() && all[3].token68.is_none());
    }

    #[test]
    fn tolerates_whitespace_empty_elements_and_unquoted_tokens() {
        let c = one("  Bearer   realm = \"x\" ,, service=reg.example ,  ");
        assert_eq!(params(&c), [("realm", "x"), ("service", "reg.example")]);
        let c = one("Bearer");
        assert!(c.params.is_empty());
        let all = parse_challenges("Basic, Bearer realm=x").unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn repeated_parameters_are_all_kept() {
        let c = one(r#"Bearer realm=x,scope="repository:a:pull",scope="repository:b:pull""#);
        assert_eq!(
            c.params_named("scope").collect::<Vec<_>>(),
            ["repository:a:pull", "repository:b:pull"]
        );
        assert_eq!(c.param("scope"), Some("repository:a:pull"));
    }

    #[test]
    fn token68_forms() {
        assert_eq!(one("Negotiate YII=").token68.as_deref(), Some("YII="));
        assert_eq!(one("X a/b+c~d").token68.as_deref(), Some("a/b+c~d"));
        // `name=` with nothing after is a padded token68, not a parameter.
        let all = parse_challenges("X abc=, Basic realm=r").unwrap();
        assert_eq!(all[0].token68.as_deref(), Some("abc="));
        assert!(all[1].is("basic"));
    }

    #[test]
    fn malformed_headers_are_errors_with_a_position() {
        for (value, reason) in [
            ("", "no challenge in the header"),
            ("   ", "no challenge in the header"),
            (
                r#"Bearer realm="unterminated"#,
                "unterminated quoted string",
            ),
            (
                r#"Bearer realm="x" service="y""#,
                "expected \",\" between parameters",
            ),
            ("Bearer realm=x,=y", "expected an auth scheme"),
            ("\"Bearer\" realm=x", "expected an auth scheme"),
            (
                "Bearer realm=\"a\u{1}b\"",
                "control character in a quoted string",
            ),
            ("Bearer abc def", "unexpected character after a token68"),
            ("Bearer@ realm=x", "expected a space after the auth scheme"),
            ("Bearer realm=\"x\\", "escape at the end of the header"),
        ] {
            let err = parse_challenges(value).expect_err(value);
            assert_eq!(err.reason, reason, "{value:?}");
            assert!(err.to_string().contains("WWW-Authenticate"));
        }
        let long = format!("Bearer realm=\"{}\"", "a".repeat(CHALLENGE_HEADER_LIMIT));
        assert!(parse_challenges(&long).is_err());
    }
}
