//! What a Python function returns, checked: a list of plain dicts, each a box
//! (`{"box": [x, y, w, h], "label": ..., "score": ...}`) or an event
//! (`{"event": "name", ...}`, its other keys kept as the event's data). Everything is bounded;
//! a box is clipped to the frame.

use serde_json::{Map, Value};

use crate::frame::{Detection, Rect};

/// Most items in one result.
pub const MAX_ITEMS: usize = 256;
/// Longest label or event name.
const MAX_NAME: usize = 64;
/// Largest data of one event, as JSON.
const MAX_EVENT_BYTES: usize = 4096;

/// An event returned by the function.
#[derive(Debug, Clone, PartialEq)]
pub struct PyEvent {
    /// Its name (`data.name` in the event store).
    pub name: String,
    /// The object it is about, when it gave a box.
    pub object: Option<Detection>,
    /// Its other keys.
    pub data: Map<String, Value>,
}

/// A checked result.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Results {
    /// The boxes (none when the function returned `None`).
    pub boxes: Option<Vec<Detection>>,
    /// The events.
    pub events: Vec<PyEvent>,
}

/// Checks the JSON of a result for a `width` x `height` frame; the error names the item and
/// the field.
pub fn parse(json: Option<&str>, width: u32, height: u32) -> Result<Results, String> {
    let Some(json) = json else {
        return Ok(Results::default());
    };
    let items: Vec<Value> = match serde_json::from_str(json).map_err(|e| e.to_string())? {
        Value::Array(a) => a,
        _ => return Err("return a list of dicts (boxes and events), a dict, or None".into()),
    };
    if items.len() > MAX_ITEMS {
        return Err(format!("{} items, more than {MAX_ITEMS}", items.len()));
    }
    let mut out = Results {
        boxes: Some(Vec::new()),
        events: Vec::new(),
    };
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut d) = item else {
            return Err(format!("item {i} is not a dict"));
        };
        let at = |m: String| format!("item {i}: {m}");
        if let Some(name) = d.remove("event") {
            let name = name_of(&name, "event").map_err(at)?;
            let object = match d.remove("box") {
                Some(b) => Some(detection(&b, &mut d, width, height).map_err(at)?),
                None => None,
            };
            let size = serde_json::to_string(&d).map_or(usize::MAX, |s| s.len());
            if size > MAX_EVENT_BYTES {
                return Err(at(format!(
                    "the event's data is {size} bytes, more than {MAX_EVENT_BYTES}"
                )));
            }
            out.events.push(PyEvent {
                name,
                object,
                data: d,
            });
        } else if let Some(b) = d.remove("box") {
            let det = detection(&b, &mut d, width, height).map_err(at)?;
            out.boxes.get_or_insert_with(Vec::new).push(det);
        } else {
            return Err(at(
                "neither a box ({\"box\": [x, y, w, h], ...}) nor an event ({\"event\": \"name\", ...})".into(),
            ));
        }
    }
    Ok(out)
}

fn name_of(v: &Value, field: &str) -> Result<String, String> {
    match v {
        Value::String(s)
            if !s.is_empty()
                && s.chars().count() <= MAX_NAME
                && !s.chars().any(char::is_control) =>
        {
            Ok(s.clone())
        }
        _ => Err(format!(
            "`{field}` must be a string of 1 to {MAX_NAME} characters"
        )),
    }
}

/// A box with its `label` and `score` (taken out of `d`), clipped to the frame.
fn detection(
    b: &Value,
    d: &mut Map<String, Value>,
    width: u32,
    height: u32,
) -> Result<Detection, String> {
    let n: Vec<f64> = match b {
        Value::Array(a) if a.len() == 4 => a.iter().filter_map(Value::as_f64).collect(),
        _ => Vec::new(),
    };
    let [x, y, w, h] = n[..] else {
        return Err("`box` must be [x, y, w, h] (four numbers, frame pixels)".into());
    };
    if !(w > 0.0 && h > 0.0) || [x, y, w, h].iter().any(|v| !v.is_finite()) {
        return Err("`box` must have a width and height above 0".into());
    }
    let (fw, fh) = (f64::from(width), f64::from(height));
    let (x1, y1) = (x.clamp(0.0, fw), y.clamp(0.0, fh));
    let (x2, y2) = ((x + w).clamp(0.0, fw), (y + h).clamp(0.0, fh));
    if x2 <= x1 || y2 <= y1 {
        return Err(format!(
            "`box` [{x}, {y}, {w}, {h}] lies outside the {width}x{height} frame"
        ));
    }
    let label = match d.remove("label") {
        Some(l) => name_of(&l, "label")?,
        None => "object".into(),
    };
    let score = match d.remove("score") {
        None => 1.0,
        Some(s) => match s.as_f64() {
            Some(v) if (0.0..=1.0).contains(&v) => v,
            _ => return Err("`score` must be a number from 0 to 1".into()),
        },
    };
    Ok(Detection {
        rect: Rect {
            x: x1 as f32,
            y: y1 as f32,
            w: (x2 - x1) as f32,
            h: (y2 - y1) as f32,
        },
        label,
        score: score as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_events_are_taken_and_checked() {
        let r = parse(
            Some(
                r#"[{"box": [-10, 5, 50, 20], "label": "person", "score": 0.9},
                   {"event": "crowd", "count": 7},
                   {"event": "door", "box": [1, 2, 3, 4], "label": "door"}]"#,
            ),
            100,
            100,
        )
        .expect("valid");
        let boxes = r.boxes.expect("boxes");
        assert_eq!(boxes.len(), 1);
        assert_eq!(
            boxes[0].rect,
            Rect {
                x: 0.0,
                y: 5.0,
                w: 40.0,
                h: 20.0
            }
        );
        assert_eq!(r.events.len(), 2);
        assert_eq!(r.events[0].name, "crowd");
        assert_eq!(r.events[0].data["count"], 7);
        assert_eq!(r.events[1].object.as_ref().expect("box").label, "door");
        assert_eq!(parse(None, 10, 10).expect("none"), Results::default());
    }

    #[test]
    fn hostile_results_are_refused_with_the_item_named() {
        for (json, part) in [
            (r#"{"box": 1}"#, "list"),
            (r#"[1]"#, "item 0 is not a dict"),
            (r#"[{"label": "x"}]"#, "neither"),
            (r#"[{"box": [0, 0, 0, 5]}]"#, "width"),
            (r#"[{"box": [0, 0, 5]}]"#, "four numbers"),
            (r#"[{"box": [500, 500, 5, 5]}]"#, "outside"),
            (r#"[{"box": [1, 1, 5, 5], "score": 2}]"#, "score"),
            (r#"[{"box": [1, 1, 5, 5], "label": ""}]"#, "label"),
            (r#"[{"event": 5}]"#, "event"),
        ] {
            let e = parse(Some(json), 100, 100).unwrap_err();
            assert!(e.contains(part), "{json}: {e}");
        }
        let many = format!(
            "[{}]",
            vec![r#"{"box": [1, 1, 2, 2]}"#; MAX_ITEMS + 1].join(",")
        );
        assert!(
            parse(Some(&many), 100, 100)
                .unwrap_err()
                .contains("more than")
        );
        let fat = format!(
            r#"[{{"event": "x", "blob": "{}"}}]"#,
            "a".repeat(MAX_EVENT_BYTES)
        );
        assert!(parse(Some(&fat), 100, 100).unwrap_err().contains("bytes"));
    }
}
