//! Slot definitions from the domain and how a slot value is stored.
//!
//! A slot keeps whatever JSON value is set, as Rasa does, with one exception: a
//! `list` slot wraps a non-list truthy value into a one-element list.

use serde_json::Value;

use crate::events::is_truthy;

/// Name of the slot that forms use to say which slot they ask for.
pub const REQUESTED_SLOT: &str = "requested_slot";
/// Name of the slot that holds the metadata of the message that started a session.
pub const SESSION_STARTED_METADATA: &str = "session_started_metadata";

/// The type of a slot, with the type-specific settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotType {
    /// `text`
    Text,
    /// `bool`
    Bool,
    /// `float`, with its featurisation range.
    Float {
        /// `min_value` (default 0.0).
        min_value: f64,
        /// `max_value` (default 1.0).
        max_value: f64,
    },
    /// `list`
    List,
    /// `categorical`, with its lower-cased values.
    Categorical {
        /// Allowed values, lower-cased, as Rasa stores them.
        values: Vec<String>,
    },
    /// `any`: never influences the conversation.
    Any,
    /// A custom slot class path (`module.Class`).
    Custom(String),
}

impl SlotType {
    /// The type name as written in a domain file.
    pub fn name(&self) -> &str {
        match self {
            SlotType::Text => "text",
            SlotType::Bool => "bool",
            SlotType::Float { .. } => "float",
            SlotType::List => "list",
            SlotType::Categorical { .. } => "categorical",
            SlotType::Any => "any",
            SlotType::Custom(path) => path,
        }
    }
}

/// One slot of the domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// Slot name.
    pub name: String,
    /// Slot type.
    pub slot_type: SlotType,
    /// Value at conversation start and after every reset.
    pub initial_value: Value,
    /// Whether the slot is part of the state the policies see.
    pub influence_conversation: bool,
    /// The slot's `mappings` as written in the domain.
    pub mappings: Vec<Value>,
}

impl Slot {
    /// A slot palaver adds itself (`requested_slot`, `session_started_metadata`).
    pub fn builtin(name: &str, slot_type: SlotType) -> Slot {
        Slot {
            name: name.to_owned(),
            slot_type,
            initial_value: Value::Null,
            influence_conversation: false,
            mappings: Vec::new(),
        }
    }

    /// The value that is stored when `value` is set on this slot.
    pub fn coerce(&self, value: Value) -> Value {
        match self.slot_type {
            SlotType::List if is_truthy(&value) && !value.is_array() => Value::Array(vec![value]),
            _ => value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_slots_wrap_single_values() {
        let s = Slot::builtin("l", SlotType::List);
        assert_eq!(s.coerce(json!("a")), json!(["a"]));
        assert_eq!(s.coerce(json!(["a"])), json!(["a"]));
        assert_eq!(s.coerce(json!(null)), json!(null));
        let t = Slot::builtin("t", SlotType::Text);
        assert_eq!(t.coerce(json!(5)), json!(5));
    }
}
