//! Rasa's `WhitespaceTokenizer`: words split on white space, punctuation at the edges
//! of words dropped, offsets in code points of the original text (what `text_tokens`
//! and entity `start`/`end` count).
//!
//! Rasa does this with a regex substitution; palaver walks the characters instead and
//! keeps the same three rules: punctuation at the end of a word goes; punctuation at
//! its start goes unless a digit follows (`-5`, `$10`); punctuation inside a word splits
//! it unless it is a URL/number character or stands next to a digit (`don't` gives
//! `don`, `t`; `10'000`, `a@b.com` and `x.y` stay whole).

/// One token of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The text as written.
    pub text: String,
    /// Start (code points).
    pub start: usize,
    /// End (exclusive, code points).
    pub end: usize,
}

impl Token {
    /// The lower-cased text, what the featurizers see.
    pub fn lower(&self) -> String {
        self.text.to_lowercase()
    }
}

/// `\w` as Python's `re` reads it, plus `#`, `@`, `&` (kept by Rasa at word edges).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '#' || c == '@' || c == '&'
}

/// Characters that do not split a word (Rasa keeps URL and number punctuation).
fn is_inner_char(c: char) -> bool {
    c.is_alphanumeric() || "_.~:/?#[]()@!$&*+,;=-".contains(c)
}

/// Splits `text` into tokens. A text with no word at all becomes one token, as in Rasa.
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        split_chunk(&chars, start, i, &mut tokens);
    }
    if tokens.is_empty() && !text.trim().is_empty() {
        let start = chars.iter().take_while(|c| c.is_whitespace()).count();
        let end = chars.len() - chars.iter().rev().take_while(|c| c.is_whitespace()).count();
        tokens.push(Token {
            text: chars[start..end].iter().collect(),
            start,
            end,
        });
    }
    tokens
}

/// The tokens of one white-space separated chunk `chars[start..end]`.
fn split_chunk(chars: &[char], mut start: usize, mut end: usize, out: &mut Vec<Token>) {
    while end > start && !is_word_char(chars[end - 1]) {
        end -= 1;
    }
    let lead = (start..end)
        .take_while(|&k| !is_word_char(chars[k]))
        .count();
    if lead > 0 && !chars[start + lead].is_ascii_digit() {
        start += lead;
    }
    let mut piece = start;
    let mut k = start;
    while k < end {
        if is_inner_char(chars[k]) {
            k += 1;
            continue;
        }
        let run_start = k;
        while k < end && !is_inner_char(chars[k]) {
            k += 1;
        }
        let before_digit = run_start > start && chars[run_start - 1].is_ascii_digit();
        let after_digit = k < end && chars[k].is_ascii_digit();
        if run_start > start && k < end && !before_digit && !after_digit {
            push(chars, piece, run_start, out);
            piece = k;
        }
    }
    push(chars, piece, end, out);
}

fn push(chars: &[char], start: usize, end: usize, out: &mut Vec<Token>) {
    if end > start {
        out.push(Token {
            text: chars[start..end].iter().collect(),
            start,
            end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(String, usize, usize)> {
        tokenize(text)
            .into_iter()
            .map(|t| (t.text, t.start, t.end))
            .collect()
    }

    #[test]
    fn as_rasa_splits() {
        assert_eq!(
            spans("are you a bot?"),
            [
                ("are".into(), 0, 3),
                ("you".into(), 4, 7),
                ("a".into(), 8, 9),
                ("bot".into(), 10, 13)
            ]
        );
        let words = |t: &str| -> Vec<String> { tokenize(t).into_iter().map(|t| t.text).collect() };
        assert_eq!(words("don't stop"), ["don", "t", "stop"]);
        assert_eq!(
            words("mail ada@example.com, now!"),
            ["mail", "ada@example.com", "now"]
        );
        assert_eq!(
            words("it costs $10'000.00 -5"),
            ["it", "costs", "$10'000.00", "-5"]
        );
        assert_eq!(words("\"quoted\" (text)"), ["quoted", "text"]);
        assert_eq!(words("?!"), ["?!"]);
        assert!(tokenize("   ").is_empty());
    }

    #[test]
    fn offsets_count_code_points() {
        assert_eq!(
            spans("Köln über"),
            [("Köln".into(), 0, 4), ("über".into(), 5, 9)]
        );
    }
}
