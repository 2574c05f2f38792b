//! Why a body did not fit its type, told without quoting the body.
//!
//! serde's own messages quote the value they refused (``invalid type:
//! integer `12345678`, expected a string``), and that value may be a
//! password; `serde_json::Error` offers nothing but that text. So once the
//! real parse has failed, the body is parsed again into a plain tree and
//! replayed into the type through a deserializer of our own, whose error
//! type keeps what serde says was *expected* and drops what was *found*.
//! This runs only for refused bodies; accepted ones are parsed once.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeOwned, Expected, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde::{Deserialize, Deserializer};

/// The field at fault (a JSON path, `.` for the whole body) and what was
/// wrong with it, neither holding a value the client sent.
pub(super) struct Explanation {
    pub field: String,
    pub message: String,
}

/// Explains why `bytes` do not deserialize into `T`.
pub(super) fn explain<T: DeserializeOwned>(bytes: &[u8]) -> Explanation {
    let tree = match serde_json::from_slice::<Node>(bytes) {
        Ok(tree) => tree,
        Err(error) => {
            return Explanation {
                field: ".".to_owned(),
                message: syntax_message(&error),
            };
        }
    };
    match serde_path_to_error::deserialize::<_, T>(tree) {
        Err(error) => Explanation {
            field: error.path().to_string(),
            message: error.into_inner().0,
        },
        // The replay accepts what serde_json refused: not expected, since
        // both walk the same tree, but then nothing more can be said safely.
        Ok(_) => Explanation {
            field: ".".to_owned(),
            message: "does not match the expected shape".to_owned(),
        },
    }
}

/// serde_json's syntax messages are fixed texts with a line and column
/// (`expected `,` or `}` at line 1 column 9`); only data errors quote
/// values, and the tree accepts any data, so anything else is unexpected
/// and gets a plain message.
fn syntax_message(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof => error.to_string(),
        Category::Data | Category::Io => "is not valid JSON".to_owned(),
    }
}

/// A refusal that names only what was expected.
#[derive(Debug)]
struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

impl de::Error for Refusal {
    // A type's own message may quote its input, so only the fact is kept.
    fn custom<T: fmt::Display>(_message: T) -> Self {
        Self("invalid value".to_owned())
    }

    fn invalid_type(_found: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self(format!("invalid type: expected {expected}"))
    }

    fn invalid_value(_found: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self(format!("invalid value: expected {expected}"))
    }

    fn invalid_length(_length: usize, expected: &dyn Expected) -> Self {
        Self(format!("invalid length: expected {expected}"))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Self(format!("unknown variant: expected {}", OneOf(expected)))
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        Self(format!("unknown field: expected {}", OneOf(expected)))
    }

    // Field names here come from our own types, not from the body.
    fn missing_field(field: &'static str) -> Self {
        Self(format!("missing field `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self(format!("duplicate field `{field}`"))
    }
}

/// `one of `a`, `b``, or `nothing` for an empty list.
struct OneOf(&'static [&'static str]);

impl fmt::Display for OneOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str("one of ")?;
        for (index, name) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

/// A JSON value as sent: object members in order, duplicates kept, so the
/// replay meets the same first error as the real parse.
enum Node {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
    List(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Unsigned(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Signed(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
        Ok(Node::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(Node::Text(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Node, E> {
        Ok(Node::Text(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Node>()? {
            members.push(member);
        }
        Ok(Node::Object(members))
    }
}

impl<'de> IntoDeserializer<'de, Refusal> for Node {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Feeds the tree to a type as serde_json would feed the bytes.
impl<'de> Deserializer<'de> for Node {
    type Error = Refusal;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self {
            Self::Null => visitor.visit_unit(),
            Self::Bool(value) => visitor.visit_bool(value),
            Self::Unsigned(value) => visitor.visit_u64(value),
            Self::Signed(value) => visitor.visit_i64(value),
            Self::Float(value) => visitor.visit_f64(value),
            Self::Text(value) => visitor.visit_string(value),
            Self::List(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Self::Object(members) => {
                let mut map = MapDeserializer::new(members.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self {
            Self::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        match self {
            Self::Text(variant) => visitor.visit_enum(variant.into_deserializer()),
            Self::Object(members) if members.len() == 1 => visitor.visit_enum(
                MapAccessDeserializer::new(MapDeserializer::new(members.into_iter())),
            ),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default)]
        count: Option<u8>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        level: Option<Level>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Level {
        Low,
        High,
    }

    fn explained(body: &str) -> Explanation {
        assert!(serde_json::from_str::<Sample>(body).is_err(), "{body}");
        explain::<Sample>(body.as_bytes())
    }

    #[test]
    fn a_wrong_type_names_the_field_and_the_expected_type_only() {
        let explanation = explained(r#"{"name": 12345678}"#);
        assert_eq!(explanation.field, "name");
        assert_eq!(explanation.message, "invalid type: expected a string");
    }

    #[test]
    fn an_out_of_range_number_is_not_quoted() {
        let explanation = explained(r#"{"name": "n", "count": 98765}"#);
        assert_eq!(explanation.field, "count");
        assert!(!explanation.message.contains("98765"));
        assert!(
            explanation.message.contains("u8"),
            "{}",
            explanation.message
        );
    }

    #[test]
    fn an_unknown_variant_lists_the_known_ones_but_not_the_one_sent() {
        let explanation = explained(r#"{"name": "n", "level": "secret-level"}"#);
        assert_eq!(explanation.field, "level");
        assert_eq!(
            explanation.message,
            "unknown variant: expected one of `low`, `high`"
        );
    }

    #[test]
    fn an_element_of_a_list_is_named_by_its_index() {
        let explanation = explained(r#"{"name": "n", "tags": ["a", true]}"#);
        assert_eq!(explanation.field, "tags[1]");
        assert!(!explanation.message.contains("true"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let explanation = explained(r#"{"count": 1}"#);
        assert_eq!(explanation.message, "missing field `name`");
    }

    #[test]
    fn a_duplicate_field_is_found_as_the_real_parse_finds_it() {
        let explanation = explained(r#"{"name": "a", "name": "b"}"#);
        assert_eq!(explanation.message, "duplicate field `name`");
    }

    #[test]
    fn a_syntax_error_points_at_the_whole_body_with_a_position() {
        let explanation = explained(r#"{"hunter2-key": [1, "#);
        assert_eq!(explanation.field, ".");
        assert!(!explanation.message.contains("hunter2"));
        assert!(
            explanation.message.contains("line 1"),
            "{}",
            explanation.message
        );
    }

    #[test]
    fn messages_of_a_types_own_code_are_not_repeated() {
        #[derive(Debug)]
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Err(de::Error::custom(format!("refused {text}")))
            }
        }
        let body = br#""top-secret""#;
        let explanation = explain::<Picky>(body);
        assert_eq!(explanation.message, "invalid value");
    }
}
