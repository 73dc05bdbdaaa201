//! JSON Pointers into a schema, built on the stack as the checker descends and rendered only
//! when an incompatibility is reported (most of them never are).

use super::draft::push_token;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Path<'p> {
    Root,
    /// A rendered pointer: where a `$ref` led.
    Abs(&'p str),
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    pub(crate) fn key(&'p self, key: &'p str) -> Path<'p> {
        Path::Key(self, key)
    }

    pub(crate) fn index(&'p self, index: usize) -> Path<'p> {
        Path::Index(self, index)
    }

    /// The RFC 6901 pointer, with `tail` tokens appended.
    pub(crate) fn render(&self, tail: &[&str]) -> String {
        let mut tokens: Vec<Token<'_>> = tail.iter().rev().map(|t| Token::Key(t)).collect();
        let mut current = self;
        let base = loop {
            match current {
                Path::Root => break "",
                Path::Abs(pointer) => break pointer,
                Path::Key(parent, key) => {
                    tokens.push(Token::Key(key));
                    current = parent;
                }
                Path::Index(parent, index) => {
                    tokens.push(Token::Index(*index));
                    current = parent;
                }
            }
        };
        let mut out = base.to_owned();
        for token in tokens.iter().rev() {
            match token {
                Token::Key(key) => push_token(&mut out, key),
                Token::Index(index) => {
                    out.push('/');
                    out.push_str(&index.to_string());
                }
            }
        }
        out
    }
}

enum Token<'p> {
    Key(&'p str),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_escaped() {
        let root = Path::Root;
        let props = root.key("properties");
        let odd = props.key("a/b~c");
        assert_eq!(odd.render(&["type"]), "/properties/a~1b~0c/type");
        let jumped = Path::Abs("/$defs/x");
        let item = jumped.index(2);
        assert_eq!(item.render(&[]), "/$defs/x/2");
        assert_eq!(root.render(&[]), "");
    }
}
