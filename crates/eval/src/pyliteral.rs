//! A reader for the Python literals some Hugging Face datasets store as strings (RACE's `problems`
//! column is `str(list_of_dicts)`), as `ast.literal_eval` reads them: strings, numbers, booleans,
//! None, lists, tuples and dicts.

use pretrace_data::Value;

/// Parses one Python literal.
pub fn parse(s: &str) -> Result<Value, String> {
    let mut p = P {
        c: s.chars().collect(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.c.len() {
        return Err(format!("unexpected text at character {}", p.i));
    }
    Ok(v)
}

struct P {
    c: Vec<char>,
    i: usize,
}

impl P {
    fn ws(&mut self) {
        while self.i < self.c.len() && self.c[self.i].is_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }
    fn expect(&mut self, ch: char) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(ch) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{ch}' at character {}", self.i))
        }
    }
    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.peek() {
            Some('[') | Some('(') => {
                let close = if self.peek() == Some('[') { ']' } else { ')' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some(close) {
                        self.i += 1;
                        break;
                    }
                    items.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => {
                            return Err(format!(
                                "expected ',' or '{close}' at character {}",
                                self.i
                            ))
                        }
                    }
                }
                Ok(Value::List(items))
            }
            Some('{') => {
                self.i += 1;
                let mut fields = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some('}') {
                        self.i += 1;
                        break;
                    }
                    let key = match self.value()? {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        other => return Err(format!("dict key {} is not a string", other.kind())),
                    };
                    self.expect(':')?;
                    fields.push((key, self.value()?));
                    self.ws();
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some('}') => {}
                        _ => return Err(format!("expected ',' or '}}' at character {}", self.i)),
                    }
                }
                Ok(Value::Struct(fields))
            }
            Some('\'') | Some('"') => self.string(),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '+' || c == '-')
                {
                    self.i += 1;
                }
                let t: String = self.c[start..self.i].iter().collect();
                t.parse::<i64>()
                    .map(Value::Int)
                    .or_else(|_| t.parse::<f64>().map(Value::Float))
                    .map_err(|_| format!("bad number '{t}'"))
            }
            Some(_) => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.i += 1;
                }
                match self.c[start..self.i].iter().collect::<String>().as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    w => Err(format!("unexpected '{w}' at character {start}")),
                }
            }
            None => Err("unexpected end of text".into()),
        }
    }
    fn string(&mut self) -> Result<Value, String> {
        let q = self.c[self.i];
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            if c == q {
                return Ok(Value::Str(out));
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err("unterminated escape".into());
            };
            self.i += 1;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                '\\' | '\'' | '"' => out.push(e),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = self
                        .c
                        .get(self.i..self.i + n)
                        .ok_or("short escape")?
                        .iter()
                        .collect();
                    self.i += n;
                    let code = u32::from_str_radix(&hex, 16)
                        .map_err(|_| format!("bad escape \\{e}{hex}"))?;
                    out.push(char::from_u32(code).ok_or(format!("bad code point {code:#x}"))?);
                }
                other => {
                    // Python keeps unknown escapes as written.
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_race_problems() {
        let v = parse(r#"[{'answer': 'B', 'options': ['a', "it's", 'c\'d', 'e\n'], 'question': 'Why?  _  .', 'id': 3}]"#).unwrap();
        let Value::List(items) = v else { panic!() };
        let p = &items[0];
        assert_eq!(p.field("answer"), Some(&Value::Str("B".into())));
        assert_eq!(
            p.field("options"),
            Some(&Value::List(vec![
                Value::Str("a".into()),
                Value::Str("it's".into()),
                Value::Str("c'd".into()),
                Value::Str("e\n".into())
            ]))
        );
        assert_eq!(p.field("id"), Some(&Value::Int(3)));
        assert!(parse("[1, 2").is_err());
        assert!(parse("{'a': 1} x").is_err());
    }
}
