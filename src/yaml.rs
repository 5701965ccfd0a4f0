//! Reading YAML the way Rasa reads it (YAML 1.2: `yes` stays a string).

use std::path::Path;

use serde_json::Value;

/// A YAML file that could not be read or parsed; the message names the file and the
/// line and column of the problem.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct YamlError {
    /// The file.
    pub path: String,
    /// What is wrong, with the position when the parser gave one.
    pub message: String,
}

/// Parses YAML text into JSON values; an empty document is `null`.
pub fn parse_str(text: &str, path: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(
        text,
        serde_saphyr::options! { strict_booleans: true },
    )
    .map_err(|e| YamlError {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Reads and parses a YAML file.
pub fn read_file(path: &Path) -> Result<Value, YamlError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| YamlError {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    parse_str(&text, &shown)
}

/// Replaces `${VAR}` with the value of the environment variable `VAR`, as Rasa does
/// in endpoints.yml and credentials.yml; an unset variable is an error.
pub fn substitute_env(text: &str) -> Result<String, String> {
    let re = regex::Regex::new(r"\$\{([^}]+)\}").map_err(|e| e.to_string())?;
    let mut missing = Vec::new();
    let out = re.replace_all(text, |c: &regex::Captures| match std::env::var(&c[1]) {
        Ok(v) => v,
        Err(_) => {
            missing.push(c[1].to_owned());
            String::new()
        }
    });
    if missing.is_empty() {
        Ok(out.into_owned())
    } else {
        Err(format!(
            "environment variable(s) {} used in the file are not set",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_2_booleans() {
        let v = parse_str("a: yes\nb: true\nc: 5\n", "x.yml").unwrap();
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], true);
        assert_eq!(v["c"], 5);
    }

    #[test]
    fn errors_name_the_file() {
        let e = parse_str("a: [1, 2\n", "bad.yml").unwrap_err();
        assert!(e.to_string().starts_with("bad.yml:"), "{e}");
    }

    #[test]
    fn env_substitution() {
        std::env::set_var("PALAVER_TEST_SUBST", "v");
        assert_eq!(substitute_env("x: ${PALAVER_TEST_SUBST}").unwrap(), "x: v");
        assert!(substitute_env("x: ${PALAVER_TEST_UNSET_VAR}").is_err());
    }
}
