//! `json.patch`: RFC 6902 applied as OPA applies it.
//!
//! regorus answers undefined wherever a patch cannot be applied; OPA raises an error (a target
//! that is not a collection, a missing key, an index out of bounds, a failed `test`). Every rule
//! here was checked against the real OPA engine (v1.20):
//!
//! - A path is a string JSON Pointer (leading slashes trimmed, `~1` is `/`, `~0` is `~`, the
//!   empty string is the whole document) or an array of segments used as they are, so an object
//!   key need not be a string.
//! - In an array a segment is an index: a decimal string without leading zeros or an integer;
//!   `-` is the end, for `add` only.
//! - In a set a segment is the member itself; `add` requires the member to equal the value.
//! - `replace` is `remove` then `add`; `move` is `remove` at `from` then `add`; `copy` reads
//!   `from`; `test` fails with an error, not undefined.
//! - Unknown attributes are ignored; a missing `op`, `path`, `value` or `from` is an error.

use super::type_name;
use anyhow::{Result, anyhow, bail};
use regorus::Value;

pub(super) fn json_patch(args: &[Value]) -> Result<Value> {
    let Value::Array(operations) = &args[1] else {
        bail!(
            "json.patch: operand 2 must be array but got {}",
            type_name(&args[1])
        );
    };
    let mut document = args[0].clone();
    for operation in operations.iter() {
        apply(&mut document, operation)?;
    }
    Ok(document)
}

fn apply(document: &mut Value, operation: &Value) -> Result<()> {
    let Value::Object(fields) = operation else {
        bail!(
            "json.patch: must be an array of JSON-Patch objects, but at least one element is not \
             an object"
        );
    };
    let attribute = |name: &str| {
        fields
            .get(&Value::from(name))
            .ok_or_else(|| anyhow!("json.patch: missing required attribute '{name}'"))
    };
    let op = match attribute("op")? {
        Value::String(op) => op.clone(),
        other => bail!(
            "json.patch: attribute 'op' must be a string but found: {}",
            type_name(other)
        ),
    };
    let path = parse_path(attribute("path")?)?;
    match &*op {
        "add" => add(document, &path, attribute("value")?.clone()),
        "remove" => remove(document, &path).map(drop),
        "replace" => {
            let value = attribute("value")?.clone();
            if !path.is_empty() {
                remove(document, &path)?;
            }
            add(document, &path, value)
        }
        "move" => {
            let from = parse_path(attribute("from")?)?;
            let value = remove(document, &from)?;
            add(document, &path, value)
        }
        "copy" => {
            let from = parse_path(attribute("from")?)?;
            let value = get(document, &from)?.clone();
            add(document, &path, value)
        }
        "test" => {
            let expected = attribute("value")?;
            let found = get(document, &path)?;
            if found != expected {
                bail!("json.patch: test failed: expected {expected} but found {found}");
            }
            Ok(())
        }
        other => bail!("json.patch: unrecognized op: '{other}'"),
    }
}

fn parse_path(path: &Value) -> Result<Vec<Value>> {
    match path {
        Value::String(pointer) if pointer.is_empty() => Ok(Vec::new()),
        Value::String(pointer) => Ok(pointer
            .trim_start_matches('/')
            .split('/')
            .map(|segment| Value::from(segment.replace("~1", "/").replace("~0", "~")))
            .collect()),
        Value::Array(segments) => Ok(segments.iter().cloned().collect()),
        other => bail!(
            "json.patch: a path must be a string JSON Pointer or an array of path segments but \
             got {}",
            type_name(other)
        ),
    }
}

/// A segment read as an array position. Negative indexes are kept so that the caller reports
/// them as out of bounds, as OPA does.
enum Position {
    Index(i64),
    End,
}

fn position(segment: &Value) -> Result<Position> {
    match segment {
        Value::String(s) if &**s == "-" => Ok(Position::End),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.len() > 1 && digits.starts_with('0') {
                bail!("json.patch: leading zeros are not allowed in JSON paths");
            }
            s.parse()
                .map(Position::Index)
                .map_err(|_| anyhow!("json.patch: invalid string for indexing: {segment}"))
        }
        Value::Number(n) => n
            .as_i64()
            .filter(|_| n.is_integer())
            .map(Position::Index)
            .ok_or_else(|| anyhow!("json.patch: invalid number type for indexing: {segment}")),
        other => bail!(
            "json.patch: invalid type for indexing: {}",
            type_name(other)
        ),
    }
}

/// `Some(i)` when the segment names an existing element of an array of `len` elements.
fn existing_index(segment: &Value, len: usize) -> Result<Option<usize>> {
    Ok(match position(segment)? {
        Position::Index(i) => usize::try_from(i).ok().filter(|&i| i < len),
        Position::End => None,
    })
}

fn not_composite(value: &Value) -> anyhow::Error {
    anyhow!(
        "json.patch: expected composite type, found value: {value} (type: {})",
        type_name(value)
    )
}

fn get<'a>(document: &'a Value, path: &[Value]) -> Result<&'a Value> {
    let mut node = document;
    for segment in path {
        let child = match node {
            Value::Object(object) => object.get(segment),
            Value::Array(items) => existing_index(segment, items.len())?.map(|i| &items[i]),
            Value::Set(members) => members.get(segment),
            scalar => return Err(not_composite(scalar)),
        };
        node =
            child.ok_or_else(|| anyhow!("json.patch: path {segment} does not exist in {node}"))?;
    }
    Ok(node)
}

/// Walks to the collection holding the path's last segment and applies `edit` to it. A set
/// member on the way is taken out, edited and put back, since a member is its own key.
fn at_parent<T>(
    node: &mut Value,
    path: &[Value],
    edit: impl FnOnce(&mut Value, &Value) -> Result<T>,
) -> Result<T> {
    let (segment, rest) = path
        .split_first()
        .expect("callers handle the empty path (the whole document)");
    if rest.is_empty() {
        return edit(node, segment);
    }
    enum Step {
        Key,
        Index(usize),
        Member,
    }
    let missing = || anyhow!("json.patch: path {segment} does not exist in {node}");
    let step = match &*node {
        Value::Object(object) if object.contains_key(segment) => Step::Key,
        Value::Array(items) => match existing_index(segment, items.len())? {
            Some(i) => Step::Index(i),
            None => return Err(missing()),
        },
        Value::Set(members) if members.contains(segment) => Step::Member,
        Value::Object(_) | Value::Set(_) => return Err(missing()),
        scalar => return Err(not_composite(scalar)),
    };
    match step {
        Step::Key => {
            let child = node.as_object_mut()?.get_mut(segment);
            at_parent(child.expect("key checked above"), rest, edit)
        }
        Step::Index(i) => {
            let child = node.as_array_mut()?.get_mut(i);
            at_parent(child.expect("index checked above"), rest, edit)
        }
        Step::Member => {
            let members = node.as_set_mut()?;
            members.remove(segment);
            let mut member = segment.clone();
            let result = at_parent(&mut member, rest, edit);
            members.insert(member);
            result
        }
    }
}

fn add(document: &mut Value, path: &[Value], value: Value) -> Result<()> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    at_parent(document, path, |parent, key| match parent {
        Value::Object(_) => {
            parent.as_object_mut()?.insert(key.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let len = items.len();
            let at =
                match position(key)? {
                    Position::End => len,
                    Position::Index(i) => usize::try_from(i)
                        .ok()
                        .filter(|&i| i <= len)
                        .ok_or_else(|| {
                            anyhow!("json.patch: index for array insertion out of bounds")
                        })?,
                };
            let mut items = items.to_vec();
            items.insert(at, value);
            *parent = Value::from(items);
            Ok(())
        }
        Value::Set(_) if *key == value => {
            parent.as_set_mut()?.insert(value);
            Ok(())
        }
        Value::Set(_) => {
            bail!("json.patch: set key {key} does not equal value to be inserted {value}")
        }
        scalar => Err(not_composite(scalar)),
    })
}

/// Removes what the path names and returns it.
fn remove(document: &mut Value, path: &[Value]) -> Result<Value> {
    if path.is_empty() {
        bail!("json.patch: cannot remove the whole document");
    }
    at_parent(document, path, |parent, key| {
        let missing = || anyhow!("json.patch: cannot delete child key {key} that does not exist");
        match parent {
            Value::Object(_) => parent.as_object_mut()?.remove(key).ok_or_else(missing),
            Value::Array(items) => {
                let i = existing_index(key, items.len())?
                    .ok_or_else(|| anyhow!("json.patch: index for array delete out of bounds"))?;
                let mut items = items.to_vec();
                let removed = items.remove(i);
                *parent = Value::from(items);
                Ok(removed)
            }
            Value::Set(_) => match parent.as_set_mut()?.remove(key) {
                true => Ok(key.clone()),
                false => Err(missing()),
            },
            scalar => Err(not_composite(scalar)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patched document as JSON, or `error`.
    fn patch(target: &str, operations: &str) -> String {
        let args = [
            Value::from_json_str(target).unwrap(),
            Value::from_json_str(operations).unwrap(),
        ];
        match json_patch(&args) {
            Ok(v) => v.to_json_str().unwrap().replace([' ', '\n'], ""),
            Err(_) => "error".to_string(),
        }
    }

    /// Each expectation was printed by the real OPA engine (v1.20).
    #[test]
    fn applies_rfc6902_operations_as_opa_does() {
        let add = |target, path: &str| {
            patch(
                target,
                &format!(r#"[{{"op": "add", "path": {path}, "value": 3}}]"#),
            )
        };
        assert_eq!(add(r#"{"a": 1}"#, r#""/b""#), r#"{"a":1,"b":3}"#);
        assert_eq!(add("[1, 2]", r#""/-""#), "[1,2,3]");
        assert_eq!(add("[1, 2]", r#""/0""#), "[3,1,2]");
        assert_eq!(add("[1, 2]", r#""/2""#), "[1,2,3]");
        assert_eq!(add(r#"{"a": 1}"#, r#""""#), "3");
        assert_eq!(add(r#"{"a": 1}"#, r#""/""#), r#"{"":3,"a":1}"#);
        assert_eq!(add(r#"{"a": 1}"#, r#""a""#), r#"{"a":3}"#);
        assert_eq!(add(r#"{"a": [0]}"#, r#"["a", 0]"#), r#"{"a":[3,0]}"#);
        assert_eq!(add(r#"{"a": [0]}"#, r#"["a", "0"]"#), r#"{"a":[3,0]}"#);
        assert_eq!(add("[[1]]", r#""/0/0""#), "[[3,1]]");
        assert_eq!(add("null", r#""""#), "3");

        let op = |target, operation: &str| patch(target, &format!("[{operation}]"));
        let object = r#"{"a": 1}"#;
        assert_eq!(op(object, r#"{"op": "remove", "path": "/a"}"#), "{}");
        assert_eq!(
            op("[1, 2, 3]", r#"{"op": "remove", "path": "/1"}"#),
            "[1,3]"
        );
        assert_eq!(
            op(object, r#"{"op": "replace", "path": "/a", "value": 5}"#),
            r#"{"a":5}"#
        );
        assert_eq!(
            op(object, r#"{"op": "replace", "path": "", "value": 7}"#),
            "7"
        );
        assert_eq!(
            op(object, r#"{"op": "move", "from": "/a", "path": "/b"}"#),
            r#"{"b":1}"#
        );
        assert_eq!(
            op(object, r#"{"op": "move", "from": "/a", "path": "/a"}"#),
            r#"{"a":1}"#
        );
        assert_eq!(
            op(
                r#"{"a": [1]}"#,
                r#"{"op": "move", "from": "/a/0", "path": "/a/-"}"#
            ),
            r#"{"a":[1]}"#
        );
        assert_eq!(
            op(object, r#"{"op": "copy", "from": "/a", "path": "/b"}"#),
            r#"{"a":1,"b":1}"#
        );
        assert_eq!(
            op(object, r#"{"op": "test", "path": "/a", "value": 1}"#),
            r#"{"a":1}"#
        );
        assert_eq!(
            op(
                object,
                r#"{"op": "add", "path": "/b", "value": 2, "extra": 1}"#
            ),
            r#"{"a":1,"b":2}"#
        );
        assert_eq!(
            patch(
                r#"{"a/b": 1, "m~n": 2}"#,
                r#"[{"op": "remove", "path": "/a~1b"}, {"op": "replace", "path": "/m~0n", "value": 3}]"#
            ),
            r#"{"m~n":3}"#
        );
        assert_eq!(patch(r#""str""#, "[]"), r#""str""#);
    }

    /// Each of these is an error in OPA (v1.20); regorus answered undefined.
    #[test]
    fn refuses_what_opa_refuses() {
        let object = r#"{"a": 1}"#;
        for (target, operations) in [
            ("1", r#"[{"op": "add", "path": "/a", "value": 2}]"#),
            ("null", r#"[{"op": "add", "path": "/added", "value": 1}]"#),
            ("[1, 2]", r#"[{"op": "add", "path": "/added", "value": 1}]"#),
            ("[1, 2]", r#"[{"op": "add", "path": "/3", "value": 3}]"#),
            ("[1, 2]", r#"[{"op": "add", "path": "/-1", "value": 3}]"#),
            ("[1, 2]", r#"[{"op": "add", "path": "/01", "value": 3}]"#),
            ("[1, 2]", r#"[{"op": "add", "path": [1.5], "value": 3}]"#),
            ("[1, 2]", r#"[{"op": "add", "path": [true], "value": 3}]"#),
            ("[[1]]", r#"[{"op": "add", "path": "/5/0", "value": 0}]"#),
            (
                r#"{"a": "s"}"#,
                r#"[{"op": "add", "path": "/a/0", "value": 0}]"#,
            ),
            (object, r#"[{"op": "add", "path": "/x/y", "value": 2}]"#),
            (object, r#"[{"op": "remove", "path": "/b"}]"#),
            (object, r#"[{"op": "remove", "path": ""}]"#),
            ("[1, 2, 3]", r#"[{"op": "remove", "path": "/5"}]"#),
            ("[0, 1]", r#"[{"op": "remove", "path": "/-"}]"#),
            (object, r#"[{"op": "replace", "path": "/b", "value": 5}]"#),
            (
                r#"{"a": [1]}"#,
                r#"[{"op": "replace", "path": "/a/-", "value": 1}]"#,
            ),
            (object, r#"[{"op": "move", "from": "/z", "path": "/b"}]"#),
            (object, r#"[{"op": "move", "from": "", "path": "/b"}]"#),
            (
                r#"{"a": {"c": 1}}"#,
                r#"[{"op": "move", "from": "/a", "path": "/a/c"}]"#,
            ),
            (object, r#"[{"op": "test", "path": "/a", "value": 2}]"#),
            (object, r#"[{"op": "test", "path": "/b", "value": 2}]"#),
            ("[0, 1]", r#"[{"op": "test", "path": "/-", "value": 1}]"#),
            (object, r#"[{"op": "frob", "path": "/a"}]"#),
            (object, r#"[{"path": "/a"}]"#),
            (object, r#"[{"op": "add", "value": 1}]"#),
            (object, r#"[{"op": "add", "path": "/b"}]"#),
            (object, r#"[{"op": 1, "path": "/a"}]"#),
            (object, r#"[{"op": "add", "path": 5, "value": 1}]"#),
            (object, r#"["x"]"#),
            (object, r#"{"op": "add"}"#),
        ] {
            assert_eq!(patch(target, operations), "error", "{target} {operations}");
        }
    }

    #[test]
    fn a_set_member_is_its_own_key() {
        let set = |members: &[i64]| {
            let mut object = Value::new_object();
            let mut set = Value::new_set();
            for &m in members {
                set.as_set_mut().unwrap().insert(Value::from(m));
            }
            object
                .as_object_mut()
                .unwrap()
                .insert(Value::from("a"), set);
            object
        };
        let path = |key: i64| Value::from(vec![Value::from("a"), Value::from(key)]);
        let operation = |op: &str, key: i64, value: Option<i64>| {
            let mut o = Value::new_object();
            let fields = o.as_object_mut().unwrap();
            fields.insert(Value::from("op"), Value::from(op));
            fields.insert(Value::from("path"), path(key));
            if let Some(v) = value {
                fields.insert(Value::from("value"), Value::from(v));
            }
            Value::from(vec![o])
        };
        let run = |target: Value, ops: Value| json_patch(&[target, ops]);
        assert_eq!(
            run(set(&[1, 2]), operation("add", 3, Some(3))).unwrap(),
            set(&[1, 2, 3])
        );
        assert!(run(set(&[1, 2]), operation("add", 3, Some(4))).is_err());
        assert_eq!(
            run(set(&[1, 2]), operation("remove", 1, None)).unwrap(),
            set(&[2])
        );
        assert!(run(set(&[1, 2]), operation("remove", 5, None)).is_err());
    }
}
